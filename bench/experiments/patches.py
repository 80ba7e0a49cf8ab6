"""The `--patches` names of bench/step_cost.py, vs_torch.py and profile_step.py: each swaps one
prototype of this folder into the library's model builders for an A/B run."""

PATCH_NAMES = ("fused_bn", "pool_shortcut")


def names(spec):
    """The patch names in a spec such as "fused_bn+pool_shortcut" ("" for none)."""
    return [name for name in spec.replace(",", "+").split("+") if name]


def apply(spec):
    """Applies the patches named in `spec` to the library's model builders (models built
    afterwards use them); returns a function that undoes them all."""
    from experiments import fused_batchnorm, pool_shortcut

    modules = {"fused_bn": fused_batchnorm, "pool_shortcut": pool_shortcut}
    undos = []
    for name in names(spec):
        if name not in modules:
            raise ValueError(f"Unknown patch {name!r}; expected some of {PATCH_NAMES}.")
        undos.append(modules[name].patch_library())

    def undo():
        for function in reversed(undos):
            function()

    return undo
