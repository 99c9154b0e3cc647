"""The Gradio annotation app (the only package that imports gradio)."""
