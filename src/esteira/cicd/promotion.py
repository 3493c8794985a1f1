"""Promotion into an environment that takes its versions from another (`promote_from`:
prod from staging): only a version that passed `esteira cd` there (`cd_passes` times) is
copied into this environment's registry and made champion, with the approval this
environment asks for; otherwise it is refused, naming what is missing, and nothing moves."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from esteira.config import ENV_VARIABLE
from esteira.registry import CHAMPION, PromotionError, Registry

if TYPE_CHECKING:
    from esteira.metadata import AliasChange


@dataclass(frozen=True)
class Promoted:
    change: AliasChange
    source_env: str
    source_version: str
    cd_passes: int


def promote_from_source(
    root: Path,
    environ: Mapping[str, str] | None,
    model: str,
    version: str | None,
    reason: str,
    approved: bool,
    alias: str = CHAMPION,
) -> Promoted:
    """Promote `version` of `model` of the environment's `promote_from` (default: its
    champion there) into the environment `environ` names, as its `alias` (the champion, or
    the challenger that a canary serves)."""
    from esteira.project import open_project

    env = dict(os.environ if environ is None else environ)
    target = Registry(open_project(root, env))
    settings = target.project.settings
    source_env = settings.environment.promote_from
    source = Registry(open_project(root, {**env, ENV_VARIABLE: source_env}))
    if version is None:
        champion = source.by_alias(model)
        if champion is None:
            raise PromotionError(f"'{model}' has no champion in {source_env} to promote to "
                                 f"{settings.env}: esteira cd --env {source_env}")  # fmt: skip
        version = champion.version
    source.version(model, version, with_metrics=False)  # names the versions when unknown
    passes = len(source.project.metadata.cd_decisions(model, version, True, kind="cd"))
    needed = settings.environment.cd_passes
    if passes < needed:
        raise PromotionError(
            f"version {version} of '{model}' passed esteira cd in {source_env} {passes} "
            f"time(s); {settings.env} needs {needed} ([environments.{settings.env}] cd_passes): "
            f"esteira cd --env {source_env} --model {model} --version {version}"
        )
    if target.held_for(alias) == "approval" and not approved:  # refuse before copying
        raise PromotionError(
            f"champion of '{model}' in {settings.env} changes only with a person's approval: "
            f'esteira promote {model} {version} --env {settings.env} --approve --reason "..."'
        )
    copied = target.copy_from(source, model, version)
    change = target.promote(model, copied.version, reason, alias, approved=approved)
    return Promoted(change, source_env, version, passes)
