"""archlab's pure-PyTorch stand-in for `fla` (flash-linear-attention); see lab/fla_shim.

Only the names that layer programs import are provided: fla.modules {ShortConvolution, RMSNorm,
FusedRMSNormGated, L2Norm}, fla.modules.l2norm.l2norm, fla.layers.utils {index_first_axis,
index_put_first_axis, get_unpad_data, pad_input, unpad_input}, fla.models.utils.Cache.
There is no fla.ops: a program that wants fla's kernels must guard that import itself.
"""

__version__ = "0.0.0+archlab.shim"
IS_ARCHLAB_SHIM = True  # lets a loader or a test tell the stand-in from the real package
