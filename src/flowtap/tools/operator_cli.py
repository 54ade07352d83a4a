"""``flowtap-cli``: the operator's command line, in Junos syntax, over flowtapd's NETCONF server.

It logs in like every other NETCONF client, as the given user with that user's login class,
and asks the server for everything it shows. Examples::

    flowtap-cli -u admin show configuration
    flowtap-cli -u admin show configuration system login
    flowtap-cli -u admin show configuration system display set    # the shell eats '|'
    flowtap-cli -u admin show configuration '|' display set        # ... unless quoted
    flowtap-cli -u admin show system commit
    flowtap-cli -u admin show system users
    flowtap-cli -u admin show services flow-tap                    # flow-tap users only
    flowtap-cli -u admin configure 'set system host-name r1' 'show | compare' \\
        'commit comment "renamed"'
    flowtap-cli -u admin configure < changes.txt                   # one command a line
    flowtap-cli -u admin                                           # interactive, user@host>

configure takes the candidate's lock for the session (Junos configure exclusive). Its commands
are set, delete, show [PATH] [| compare | display set], commit [check] [confirmed N]
[comment "TEXT"] [and-quit], rollback N, run COMMAND, exit. Leaving it discards uncommitted
changes and cancels a commit confirmed that was not confirmed, and says so on stderr. Commands
given as arguments, or read from a file or pipe, stop at the first error.

The password comes from --password-file, --password-env (default FLOWTAP_CLI_PASSWORD) or a
prompt, unless -i names a key. --json prints the same data as JSON. Exit status: 0 when every
command succeeded, 1 when one failed (the server refused it, or it is not a command), 2 when
the login or connection failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import getpass
import json
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import asyncssh

from flowtap.about import add_version, plain
from flowtap.tools import operator_ops as ops
from flowtap.tools import operator_render as render
from flowtap.tools.netconf_client import NetconfClient
from flowtap.tools.operator_configure import ConfigureMode, split_pipe, words_of
from flowtap.tools.operator_ops import CommandFailed, UsageError
from flowtap.tools.ssh_login import Refused, add_login_arguments, login

PROG = "flowtap-cli"
OPERATIONAL = ("show configuration [PATH] [| display set]", "show system commit",
               "show system users", "show services flow-tap", "configure")  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=plain(__doc__),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_version(p)
    add_login_arguments(p, port=830, password_env="FLOWTAP_CLI_PASSWORD",  # noqa: S106
                        user_help="login name (default: yours)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the data as JSON")
    p.add_argument("command", nargs=argparse.REMAINDER,
                   help="a command (none: read commands interactively)")
    return p


def _unknown(words: list[str]) -> UsageError:
    return UsageError(f"unknown command {' '.join(words)!r} (commands: {', '.join(OPERATIONAL)})")


class Operator:
    """The operational commands, on one NETCONF session; each returns what to print."""

    def __init__(self, nc: NetconfClient, as_json: bool) -> None:
        self.nc = nc
        self.as_json = as_json

    def _out(self, text: str, data: Any) -> str:
        return json.dumps(data, indent=2) + "\n" if self.as_json else text

    async def command(self, words: list[str]) -> str:
        if words[:2] == ["show", "configuration"]:
            return await self._configuration(words[2:])
        if words == ["show", "system", "commit"]:
            commits = await ops.commit_history(self.nc)
            return self._out(render.commit_table(commits), ops.as_json(commits))
        if words == ["show", "system", "users"]:
            sessions = await ops.sessions(self.nc)
            return self._out(render.session_table(sessions), ops.as_json(sessions))
        if words == ["show", "services", "flow-tap"]:
            state = await ops.flow_tap_state(self.nc)
            return self._out(render.flow_tap_text(state), state)
        raise _unknown(words)

    async def _configuration(self, words: list[str]) -> str:
        path, pipe = split_pipe(words) if words else ([], [])
        if pipe not in ([], ["display", "set"]):
            raise UsageError(f"show configuration: unknown pipe '| {' '.join(pipe)}' "
                             "(display set)")  # fmt: skip
        if pipe:
            lines = render.select_set(await ops.configuration(self.nc, "committed", "set"), path)
            return self._out(lines, {"path": path, "set": lines.splitlines()})
        text = render.configuration_at(await ops.configuration(self.nc, "committed", "text"),
                                       path, "show configuration")  # fmt: skip
        return self._out(text, {"path": path, "configuration": text})


async def _read_line(prompt: str | None) -> str | None:
    """One line from stdin (after ``prompt`` on a terminal); None at end of input.

    It is read in a thread so the event loop keeps answering the server's SSH keepalives while
    the operator thinks. The thread is a daemon: after Ctrl-C, a read still waiting for a line
    must not keep the program from ending (asyncio's own executor would wait for it)."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str | None] = loop.create_future()

    def deliver(line: str | None) -> None:
        if not answer.done():
            answer.set_result(line)

    def read() -> None:
        line: str | None
        try:
            line = input(prompt) if prompt is not None else (sys.stdin.readline() or None)
        except EOFError:
            print()
            line = None
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(deliver, line)

    threading.Thread(target=read, name="flowtap-cli-stdin", daemon=True).start()
    return await answer


class Runner:
    """Commands from the arguments, or read from stdin (a prompt when it is a terminal)."""

    def __init__(self, nc: NetconfClient, args: argparse.Namespace, prompt_host: str,
                 interactive: bool) -> None:  # fmt: skip
        self.nc = nc
        self.args = args
        self.operator = Operator(nc, args.json)
        self.interactive = interactive  # a terminal to prompt on, and no command given
        self.where = f"{args.user}@{prompt_host or args.host}"
        self.failed = False
        self.results: list[dict[str, str]] = []  # --json of configure

    def _error(self, text: str) -> None:
        self.failed = True
        print(f"{PROG}: {text}" if not self.interactive else f"error: {text}", file=sys.stderr)

    async def run(self, words: list[str]) -> None:
        if words[:1] == ["configure"]:
            await self.configure(words[1:])
        elif words:
            sys.stdout.write(await self.operator.command(words))
        else:
            await self.operational_loop()

    async def operational_loop(self) -> None:
        while (line := await _read_line(f"{self.where}> " if self.interactive else None)) \
                is not None:  # fmt: skip
            try:
                words = words_of(line)
                if words in (["exit"], ["quit"]):
                    return
                if words in (["help"], ["?"]):
                    print("\n".join((*OPERATIONAL, "exit, quit")))
                elif words:
                    await self.run(words)
            except (CommandFailed, UsageError) as exc:
                self._error(str(exc))
                if not self.interactive:
                    return

    async def configure(self, lines: list[str]) -> None:
        if lines[:1] == ["exclusive"]:  # what it is anyway
            lines = lines[1:]
        if lines[:1] in (["private"], ["dynamic"], ["ephemeral"]):
            raise UsageError(f"configure {lines[0]} is not supported: flowtapd has one shared "
                             "candidate, which configure locks (configure exclusive)")  # fmt: skip
        mode = ConfigureMode(self.nc, self.operator.command)
        await mode.enter()
        if self.interactive:
            print("Entering configuration mode (exclusive: the candidate is locked for this "
                  "session)")  # fmt: skip
        try:
            await self._configure_lines(mode, lines)
        finally:
            await mode.leave()
            for note in mode.notes:
                print(f"{PROG}: {note}" if not self.interactive else f"warning: {note}",
                      file=sys.stderr)  # fmt: skip
            if self.args.json:
                print(json.dumps({"commands": self.results, "exit": mode.notes}, indent=2))
            elif self.interactive:
                print("Exiting configuration mode")
        if self.interactive:  # the prompt follows a committed host-name, as on Junos
            self.where = f"{self.args.user}@{await ops.host_name(self.nc) or self.args.host}"

    async def _configure_lines(self, mode: ConfigureMode, lines: list[str]) -> None:
        interactive = self.interactive
        queue = list(lines)
        while not mode.done:
            if lines:
                if not queue:
                    return
                line = queue.pop(0)
            else:
                read = await _read_line(f"{self.where}# " if interactive else None)
                if read is None:
                    return
                line = read
            try:
                output = await mode.run(line)
            except (CommandFailed, UsageError) as exc:
                self.results.append({"command": line.strip(), "error": str(exc)})
                if self.args.json:
                    self.failed = True
                else:
                    self._error(str(exc))
                if not interactive:
                    return
                continue
            self.results.append({"command": line.strip(), "output": output})
            if not self.args.json:
                sys.stdout.write(output)
                sys.stdout.flush()


async def _session(args: argparse.Namespace, words: list[str]) -> bool:
    connect: Callable[..., Any] = functools.partial(NetconfClient.connect, args.host, args.port,
                                                    args.user)  # fmt: skip
    nc: NetconfClient = await login(args, connect)
    try:
        interactive = sys.stdin.isatty() and words in ([], ["configure"],
                                                       ["configure", "exclusive"])  # fmt: skip
        prompt_host = await ops.host_name(nc) if interactive else ""
        runner = Runner(nc, args, prompt_host, interactive)
        try:
            await runner.run(words)
        except (CommandFailed, UsageError) as exc:
            runner._error(str(exc))
        return not runner.failed
    finally:
        await nc.close()


def _check_command(words: list[str]) -> None:
    """Refuse what is not a command before asking for a password."""
    if words[:1] in ([], ["configure"]) or words[:2] == ["show", "configuration"]:
        return
    if " ".join(words) not in OPERATIONAL:
        raise _unknown(words)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.user = args.user or getpass.getuser()
    except (KeyError, OSError):  # no login name in the environment or the password database
        print(f"{PROG}: who are you? give the login name with -u", file=sys.stderr)
        return 2
    words = [w for arg in args.command for w in (words_of(arg) if " " in arg else [arg])] \
        if args.command[:1] != ["configure"] else args.command  # fmt: skip
    try:
        _check_command(words)
        ok = asyncio.run(_session(args, words))
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except Refused as refusal:
        print(f"{PROG}: {refusal}", file=sys.stderr)
        return 2
    except (OSError, asyncssh.Error) as exc:  # connection refused, unreachable, SSH failures
        print(f"{PROG}: {args.host} port {args.port}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # configure mode was left as by exit (or the server cleaned up)
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # a read of stdin may still wait in its daemon thread, holding stdin's lock: the
        # interpreter's normal shutdown would abort on it (Python's "could not acquire lock")
        os._exit(130)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
