"""``eventlens goal add``, ``goal list`` and ``goal remove``: a project's goals.

A page-view goal matches a path pattern (``--path /blog/*``: ``*`` any characters but ``/``,
``**`` any characters); an event goal an event name (``--event signup``), optionally with one
property value (``--property plan=pro``). Running API replicas see a change within about 10 s.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from eventlens.cli.common import (
    DataDirOption,
    JsonOption,
    MetadataUrlOption,
    cli_errors,
    fail,
    metadata_store,
    print_json,
    print_table,
    settings_from,
)
from eventlens.errors import pydantic_details, validation_message
from eventlens.goals import Goal, GoalSpec, parse_property

app = typer.Typer(help="Add, list and remove a project's goals (conversions).", no_args_is_help=True)

ProjectOption = Annotated[str, typer.Option("--project", "-p", help="Project id.")]


def goal_dict(goal: Goal) -> dict[str, Any]:
    return {**goal.definition(), "created_at": goal.created_at.isoformat()}


def _matches(goal: Goal) -> str:
    if goal.kind == "page_view":
        return f"path {goal.path}"
    prop = goal.property
    return f"event {goal.event}" + (f" where {prop['key']}={prop['value']}" if prop else "")


@app.command("add")
def add_goal(
    project: ProjectOption,
    name: Annotated[str, typer.Option("--name", "-n", help="The goal's name, unique in the project.")],
    path: Annotated[
        str | None,
        typer.Option("--path", help="A page-view goal: exact path, or a pattern with * (no /) and ** (any)."),
    ] = None,
    event: Annotated[str | None, typer.Option("--event", help="An event goal: the event name.")] = None,
    prop: Annotated[
        str | None, typer.Option("--property", help="With --event: only events whose property key=value.")
    ] = None,
    data_dir: DataDirOption = None,
    metadata_url: MetadataUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a goal to a project."""
    with cli_errors():
        if (path is None) == (event is None):
            fail("give exactly one of --path (a page-view goal) or --event (an event goal)")
        if prop is not None and event is None:
            fail("--property applies to event goals (--event) only")
        try:
            spec = GoalSpec(
                name=name, path=path, event=event, property=parse_property(prop) if prop is not None else None
            )
        except ValidationError as exc:
            details = pydantic_details(exc)
            fail("invalid goal: " + validation_message(details).replace("property.", "--property "))
        settings = settings_from(data_dir, metadata_url)
        with metadata_store(settings) as store:
            goal = store.create_goal(project, spec)
    if as_json:
        print_json(goal_dict(goal))
    else:
        typer.echo(f"Added goal {goal.name!r} ({_matches(goal)}) to project {project}, id {goal.id}")


@app.command("list")
def list_goals(
    project: ProjectOption,
    data_dir: DataDirOption = None,
    metadata_url: MetadataUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a project's goals, oldest first."""
    with cli_errors():
        settings = settings_from(data_dir, metadata_url)
        with metadata_store(settings) as store:
            if store.get_project(project) is None:
                fail(f"unknown project {project!r}")
            goals = store.list_goals(project)
    if as_json:
        print_json([goal_dict(g) for g in goals])
    elif not goals:
        typer.echo("No goals.")
    else:
        rows = [
            [g.id, g.name, g.kind, _matches(g), g.created_at.isoformat(timespec="seconds")] for g in goals
        ]
        print_table(["ID", "NAME", "KIND", "MATCHES", "CREATED"], rows)


@app.command("remove")
def remove_goal(
    project: ProjectOption,
    name: Annotated[str, typer.Option("--name", "-n", help="The goal's name.")],
    data_dir: DataDirOption = None,
    metadata_url: MetadataUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove a goal by name. Stored events are untouched; the goal's numbers are no longer shown."""
    with cli_errors():
        settings = settings_from(data_dir, metadata_url)
        with metadata_store(settings) as store:
            goal = store.delete_goal(project, name=name)
        if goal is None:
            fail(f"project {project!r} has no goal named {name!r}")
    if as_json:
        print_json(goal_dict(goal))
    else:
        typer.echo(f"Removed goal {goal.name!r} from project {project}")
