"""The checks a step cannot make on its own: where its jumps lead, whether it can ever run, and whether the
templates and channels it names exist and can do what it asks of them.

They run once every step of a file is read, so that a jump to a step further down, or to a broken step, is
judged against every id the author declared.
"""

from __future__ import annotations

from typing import Protocol

from omnicanal.channels import CHANNELS
from omnicanal.journey.graph import loops, reachable, step_edges
from omnicanal.journey.model import DigestStep, SendStep, Step, WaitForStep, WaitStep
from omnicanal.journey.report import FileReport
from omnicanal.suggest import did_you_mean


class TemplateLookup(Protocol):
    def channels(self, name: str) -> frozenset[str] | None:
        """Channels the template has a variant for; None if there is no such template."""


def check_steps(report: FileReport, steps: list[Step], step_lines: dict[str, int], *, complete: bool,
                templates: TemplateLookup | None) -> None:
    """Record the problems of `steps` as a whole; `step_lines` holds every id declared, even of broken steps,
    and `complete` says whether every step was built."""
    _check_flow(report, steps, step_lines, complete=complete)
    if complete and len(step_lines) == len(steps):
        _check_loops(report, steps)
    for step in steps:
        _check_send(report, step, templates)
        _check_fallback(report, step)


def _check_flow(report: FileReport, steps: list[Step], step_lines: dict[str, int], *, complete: bool) -> None:
    """Jump targets must exist; then, on a sound graph, every step must be reachable.

    Sound means every step built, ids unique and targets right: otherwise reachability would report steps
    that fixing the other problems makes reachable again.
    """
    sound = complete and len(step_lines) == len(steps)
    for step in steps:
        for edge in step_edges(step, None):
            if edge.loc is not None and edge.target not in step_lines:
                sound = False
                loc = ("steps", step.index, step.kind, *edge.loc)
                report.add(loc, f"{report.where(loc)}: no step has the id {edge.target!r}"
                                f"{did_you_mean(edge.target, step_lines)}")
    if sound:
        for index in sorted(set(range(len(steps))) - reachable(steps)):
            report.add(("steps", index), f"step {steps[index].id!r} can never run: the step before it does not "
                                         "continue to it and no goto, branch or on_timeout leads to it; jump to "
                                         "it or remove it")


def _check_loops(report: FileReport, steps: list[Step]) -> None:
    """A loop that sends and never waits would send the customer a message per turn until the step limit stops
    it, hundreds in an instant: refused. (A loop that only computes is stopped by the step limit at run time.)"""
    for loop in loops(steps):
        members = [steps[index] for index in sorted(loop)]
        if any(isinstance(step.action, WaitStep | WaitForStep | DigestStep) for step in members):
            continue
        sends = [step for step in members if isinstance(step.action, SendStep)]
        if sends:
            ids = ", ".join(step.id for step in members)
            report.add(("steps", sends[0].index), f"the loop through steps {ids} sends without waiting: each turn "
                       "would send another message at once; add a wait or wait_for inside the loop")


def _check_send(report: FileReport, step: Step, templates: TemplateLookup | None) -> None:
    """Channels must be the engine's, and (with a template lookup) the template must exist for each."""
    if not isinstance(step.action, SendStep | DigestStep):
        return
    where, name = ("steps", step.index, step.kind), step.action.template
    available = templates.channels(name) if templates is not None else None
    if templates is not None and available is None:
        report.add((*where, "template"), f"template {name!r} does not exist: add {name}.yaml to the templates "
                                         "directory or fix the name")
    for number, channel in enumerate(step.action.channels):
        if channel not in CHANNELS:
            report.add((*where, "channels", number), f"unknown channel {channel!r}; expected one of: "
                       f"{', '.join(sorted(CHANNELS))}{did_you_mean(channel, CHANNELS)}")
        elif available is not None and channel not in available:
            report.add((*where, "channels", number), f"template {name!r} has no {channel!r} variant: add one "
                                                     f"to {name}.yaml or drop {channel!r} here")


def _check_fallback(report: FileReport, step: Step) -> None:
    """`fallback_after` waits for a delivery: each channel it may fall back from must report one, or the step
    must name the events that count as one (`delivered_on`); otherwise the next channel would always be sent
    too."""
    send = step.action
    if not isinstance(send, SendStep) or send.fallback_after is None or send.delivered_on:
        return
    silent = [channel for channel in send.channels[:-1]
              if channel in CHANNELS and not CHANNELS[channel].delivery_receipts]
    if not silent:
        return
    loc = ("steps", step.index, step.kind, "fallback_after")
    subject = f"channel {silent[0]}" if len(silent) == 1 else f"channels {', '.join(silent)}"
    reporting = ", ".join(sorted(name for name, spec in CHANNELS.items() if spec.delivery_receipts))
    report.add(loc, f"{report.where(loc)}: {subject} never {'reports' if len(silent) == 1 else 'report'} "
                    "delivery, so the fallback would always send: add e.g. "
                    f"`delivered_on: {silent[0]}.opened` (an event your app sends when the message is seen) "
                    f"or put channels that report delivery ({reporting}) first")
