"""What the spawn form shows one user: the image profiles with, beside each GPU one, what is free and what Start
would do now, the hardware choice where images do not decide it, and a sentence on the GPUs."""

from __future__ import annotations

import html
from dataclasses import dataclass


@dataclass(frozen=True)
class KindChoice:
    """One kind of GPU on the form: what it is, and how many of it are free now."""

    kind: str
    label: str
    free: int
    total: int

    def option(self, count: int, on_exhausted: str) -> str:
        usable = self.free >= count or on_exhausted != "refuse"
        said = f"{self.label} — {self.free} of {self.total} free" + (
            "" if self.free >= count else " (wait in line)" if on_exhausted == "wait" else "")
        return (f'<option value="{html.escape(self.kind, quote=True)}"{"" if usable else " disabled"}>'
                f"{html.escape(said)}</option>")


@dataclass(frozen=True)
class GPUAvailability:
    """The GPUs as the spawn form shows them to one user: free of total, how many wait, how many a server of
    theirs gets, why none can be had now ("" where one can), and what Start then does (``on_exhausted``)."""

    free: int
    total: int
    waiting: int
    count: int
    why: str
    on_exhausted: str
    # Where there is more than one kind of GPU: each, for a choice (none: one kind, no choice).
    kinds: tuple[KindChoice, ...] = ()
    # Servers that may share one GPU (users_per_gpu): above 1, nothing divides its memory between them.
    shared_by: int = 1
    # What is left of the user's GPU budget and when it renews ("" where they have none).
    budget: str = ""

    def can_start(self) -> bool:
        return not self.why or self.on_exhausted != "refuse"

    def option_text(self) -> str:
        gpus = f"{self.count} GPU{'s' if self.count > 1 else ''}"
        if not self.why:
            return f"{gpus} ({self.free} of {self.total} free)"
        return f"{gpus} ({'wait in line' if self.on_exhausted == 'wait' else 'none free now'})"

    def option_attributes(self) -> str:
        return " selected" if self.can_start() else " disabled"

    def paragraph(self) -> str:
        said = f"{self.free} of {self.total} GPUs free"
        if self.waiting:
            said += f", {self.waiting} waiting for one"
        if self.shared_by > 1:
            others = self.shared_by - 1
            said += (f"; each GPU is shared with up to {others} other server{'s' if others > 1 else ''}, and its "
                     "memory is not reserved for yours")
        if self.why:
            said += ". " + {"wait": "Start a GPU server to wait in line for the next GPU released.",
                            "cpu": "A GPU server started now starts without a GPU.",
                            "refuse": "A GPU server cannot start now."}[self.on_exhausted]
            said += f" ({self.why.rstrip('.')}.)"
        budget = f'<p class="gpu-budget" id="gpu-budget">{html.escape(self.budget)}.</p>' if self.budget else ""
        return f'<p class="gpu-availability" id="gpu-availability">{html.escape(said)}</p>{budget}'

    def kind_choice(self) -> str:
        """The GPU kinds to choose from, with what is free of each ("" where there is one kind)."""
        if len(self.kinds) < 2:
            return ""
        options = "".join(kind.option(self.count, self.on_exhausted) for kind in self.kinds)
        # A list box, not a drop-down: every kind and what is free of it in view at once.
        return ('<label for="gpu_kind">GPU:</label><select class="form-control" id="gpu_kind" name="gpu_kind" '
                f'size="{len(self.kinds) + 1}"><option value="" selected>Any kind — {self.free} of {self.total} '
                f'free</option>{options}</select>')


def spawn_form(spawner, gpus: GPUAvailability | None) -> str:
    """The whole form for ``spawner``'s user (``gpus``: None for one who may not have a GPU): where images hold GPUs
    or not (profiles), choosing the image is choosing the hardware; otherwise a GPU/CPU-only select, if offered."""
    images = image_choice(spawner, gpus)
    if gpus is None:
        return images
    if spawner.gpu_images or not spawner.offer_cpu_only:
        return images + gpus.kind_choice() + gpus.paragraph()
    hardware = (
        '<label for="gpu">Hardware:</label>'
        '<select class="form-control" name="gpu">'
        f'<option value="gpu"{gpus.option_attributes()}>{gpus.option_text()}</option>'
        f'<option value="cpu"{"" if gpus.can_start() else " selected"}>CPU only</option></select>'
    )
    return images + hardware + gpus.kind_choice() + gpus.paragraph()


def image_choice(spawner, gpus: GPUAvailability | None = None) -> str:
    """The spawn form's image select, where there is a choice: names escaped, the user's default selected, and
    beside each GPU profile how many GPUs are free (one that cannot start now greyed out).
    (DockerSpawner 14's own form writes its options as a Python list's repr, and names unescaped.)"""
    allowed = spawner._get_allowed_images()
    if not isinstance(allowed, dict) or len(allowed) <= 1:
        return ""

    def holds_gpu(name: str) -> bool:
        return gpus is not None and bool({name, allowed[name]} & set(spawner.gpu_images))

    usable = [name for name in allowed if not holds_gpu(name) or gpus.can_start()]
    default = spawner._default_pick()
    if default not in usable:
        default = (usable or list(allowed))[0]
    options = "".join(
        f'<option value="{html.escape(name, quote=True)}"{" selected" if name == default else ""}'
        f'{"" if name in usable else " disabled"}>{html.escape(name)}'
        f'{" — " + html.escape(gpus.option_text()) if holds_gpu(name) else ""}</option>'
        for name in allowed
    )
    return (
        '<label for="image">Image:</label>'
        f'<select class="form-control" id="image" name="image" required autofocus>{options}</select>'
    )
