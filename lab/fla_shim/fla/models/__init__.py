"""fla.models in the stand-in: only `fla.models.utils.Cache` is provided."""
