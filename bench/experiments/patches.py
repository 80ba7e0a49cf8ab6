"""The `--patches` names of bench/step_cost.py, vs_torch.py and profile_step.py: each makes the
library's model builders build one of its previous layers (previous_layers.py), for an A/B run
of an adopted change."""

PATCH_NAMES = ("keras_bn", "sliced_shortcut")


def names(spec):
    """The patch names in a spec such as "keras_bn+sliced_shortcut" ("" for none)."""
    return [name for name in spec.replace(",", "+").split("+") if name]


def apply(spec):
    """Applies the patches named in `spec` to the library's model builders (models built
    afterwards use them); returns a function that undoes them all."""
    from experiments import previous_layers

    patches = {
        "keras_bn": previous_layers.patch_keras_bn,
        "sliced_shortcut": previous_layers.patch_sliced_shortcut,
    }
    undos = []
    for name in names(spec):
        if name not in patches:
            raise ValueError(f"Unknown patch {name!r}; expected some of {PATCH_NAMES}.")
        undos.append(patches[name]())

    def undo():
        for function in reversed(undos):
            function()

    return undo
