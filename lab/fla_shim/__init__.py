"""A pure-PyTorch stand-in for the parts of flash-linear-attention (`fla`) that layer programs import.

Real fla needs Triton and a CUDA GPU. The published ASI-Arch programs import only a handful of
its names (ShortConvolution, RMSNorm, FusedRMSNormGated, l2norm, the padding helpers of
fla.layers.utils and the Cache type); this folder holds an importable `fla` package that
provides those names with the same call signatures and numerics, in plain PyTorch.

The sandbox puts SHIM_DIR at the front of sys.path when real fla is not usable, so that
`from fla.modules import ShortConvolution` inside a program resolves to `SHIM_DIR/fla/...`.
"""
from pathlib import Path

SHIM_DIR = Path(__file__).resolve().parent

__all__ = ["SHIM_DIR"]
