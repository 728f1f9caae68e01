"""fla.layers in the stand-in: only `fla.layers.utils` (the padding helpers) is provided."""
