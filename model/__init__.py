"""VidMusician: features, conditioning, backbone adapter, training, generation, metrics."""
