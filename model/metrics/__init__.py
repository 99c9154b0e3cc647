"""Evaluation metrics of the paper (section 5.2) and of the dance-to-music literature, and the report.

`scenes` (PySceneDetect scene changes, or the manifest's), `rhythm` (the rhythm score: recall of scene
changes at music beats), `trackers` (pluggable beat trackers), `beats` (Beats Coverage / Hit Scores),
`transitions` (beat alignment at storyboard transitions), `agreement` (beat F-measure and tempo agreement
with the ground-truth music), `distribution` (Fréchet distance, paired KL), `panns` (the PANNs Cnn14
network those two read), `clap` (CLAP audio embeddings and their cosine), `evaluate` (one run of generated
music against a manifest's references), `report` (JSON and Markdown tables).
"""
