"""Choosing a diffusion prior in the widgets: shipped priors, priors fine-tuned in this session
(:data:`USER_PRIORS`, filled by the *Fine-tune prior* widget) and any ``.safetensors`` file."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import ComboBox, FileEdit, Label
from psygnal import Signal

from napari_ddip.io import InputError

#: The prior chooser's entry that shows a file picker.
FILE = "file…"
#: What to do when no prior is at hand.
HOW_TO_GET_A_PRIOR = (
    "pick a prior file (NAME.safetensors beside its NAME.json) with 'file…', fine-tune one in "
    "the 'Fine-tune prior' widget, or train one with `napari-ddip train-prior --out DIR`; "
    "the classical methods (fbp, zero-filled, cg, tv) need none"
)


class UserPriors:
    """Priors written in this session, by path; :attr:`changed` fires when one is added."""

    changed = Signal()

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def add(self, name: str, path: str | Path) -> None:
        """Make the prior at ``path`` selectable as ``name`` in every prior chooser."""
        self._names[str(path)] = name
        self.changed.emit()

    def items(self) -> list[tuple[str, str]]:
        """``(name, path)`` pairs, oldest first."""
        return [(name, path) for path, name in self._names.items()]

    def paths(self) -> list[str]:
        """The registered weight paths."""
        return list(self._names)


#: The session's user priors (one registry for every widget).
USER_PRIORS = UserPriors()


def shipped(first: str | None = None) -> list[str]:
    """Names of the shipped priors, ``first`` first (default: the default diffusion prior)."""
    from napari_ddip.prior.weights import DEFAULT_PRIOR, shipped_priors

    names = shipped_priors()
    return sorted(names, key=lambda name: name != (first or DEFAULT_PRIOR))


class PriorPicker:
    """A prior chooser: shipped names, this session's fine-tuned priors, or ``file…`` (then a
    file picker). :attr:`value` is what :func:`napari_ddip.prior.weights.load_prior` takes.

    Its :attr:`widgets` go into the caller's container (so that labels line up). With
    ``follow_new`` a prior added to :data:`USER_PRIORS` becomes the chosen one; ``first``: the
    shipped prior listed (and chosen) first.
    """

    def __init__(
        self, label: str = "prior", follow_new: bool = False, first: str | None = None
    ) -> None:
        self._first = first
        self.choice = ComboBox(label=label, choices=self._choices)
        self.file = FileEdit(label=f"{label} file", mode="r", filter="*.safetensors")
        self.hint = Label(value=f"No prior is installed: {HOW_TO_GET_A_PRIOR}.")
        self.hint.native.setWordWrap(True)
        self.widgets = [self.choice, self.file, self.hint]
        self._follow_new = follow_new
        self._known = set(USER_PRIORS.paths())
        self._shown = True
        self.choice.changed.connect(self._show_file)
        self.file.changed.connect(self._show_file)
        USER_PRIORS.changed.connect(self.refresh)
        self.choice.native.destroyed.connect(
            lambda *_: USER_PRIORS.changed.disconnect(self.refresh)
        )
        self._show_file()

    def _choices(self, _: ComboBox) -> list[tuple[str, str]]:
        names = [(name, name) for name in shipped(self._first)]
        users = [(f"{name} (fine-tuned)", path) for name, path in USER_PRIORS.items()]
        return [*names, *users, (FILE, FILE)]

    def refresh(self) -> None:
        """Re-read the shipped and user priors (called when a user prior is added)."""
        self.choice.reset_choices()
        new = [path for path in USER_PRIORS.paths() if path not in self._known]
        self._known.update(new)
        if new and self._follow_new:
            self.choice.value = new[-1]
        self._show_file()

    @property
    def visible(self) -> bool:
        """Whether the chooser is shown."""
        return self._shown

    @visible.setter
    def visible(self, shown: bool) -> None:
        self._shown = shown
        self.choice.visible = shown
        self._show_file()

    def _show_file(self, *_: object) -> None:
        picking = self._shown and self.choice.value == FILE
        self.file.visible = picking
        none_at_hand = not shipped() and not USER_PRIORS.paths() and self.value is None
        self.hint.visible = picking and none_at_hand

    @property
    def value(self) -> str | None:
        """The chosen shipped name or weights path; None when ``file…`` has no file yet."""
        if self.choice.value != FILE:
            return self.choice.value
        path = Path(self.file.value)
        return str(path) if path.is_file() else None

    def require(self) -> str:
        """:attr:`value`, or an :class:`InputError` that says how to get a prior."""
        value = self.value
        if value is None:
            raise InputError(f"no prior chosen: {HOW_TO_GET_A_PRIOR}")
        return value
