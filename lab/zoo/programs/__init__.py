"""The zoo's layer programs. Each file is one self-contained program: it travels as source text in
events and runs in the sandbox with fla (real, or the stand-in in lab/fla_shim) importable.
Read them with lab.zoo.zoo_source(name); they are not meant to be imported from here."""
