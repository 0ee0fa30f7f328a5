#!/usr/bin/env python
import os
import signal
import sys


def _exit_on_sigterm(signum, frame):
    # Further signals (the demo's shell sends more than one) must not cut the exit short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(128 + signum)


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # SIGTERM (`make demo`'s Ctrl-C, `kill`) should run exit handlers like Ctrl-C does, so
    # the process leaves the embedded database's list and the last one out stops it. Not in
    # runserver's reloading parent: it uses no database, and exiting through Python would
    # make it SIGKILL the child serving requests before the child could clean up.
    reloader_parent = (
        "runserver" in sys.argv
        and "--noreload" not in sys.argv
        and os.environ.get("DJANGO_AUTORELOAD_ENV") != "true"
    )
    if not reloader_parent and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
