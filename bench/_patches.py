"""The bench-side prototypes of library changes, by name, for --patches flags."""

PATCH_NAMES = ("fused_bn", "pool_shortcut")


def apply(spec):
    """Applies the patches named in `spec` ("fused_bn+pool_shortcut", "" for none) to the
    library's model builders; returns a function that undoes them all."""
    undos = []
    for name in [n for n in spec.replace(",", "+").split("+") if n]:
        if name == "fused_bn":
            import fused_batchnorm

            undos.append(fused_batchnorm.patch_library())
        elif name == "pool_shortcut":
            import pool_shortcut

            undos.append(pool_shortcut.patch_library())
        else:
            raise ValueError(f"Unknown patch {name!r}; expected some of {PATCH_NAMES}.")

    def undo():
        for function in reversed(undos):
            function()

    return undo
