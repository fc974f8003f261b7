# The benchmarks' attrs plugin: the trivial lifecycle plus a real library
# imported from the plugin's own venv (attrs, pinned by scripts/bench), so the
# start-up and memory figures include what importing a package costs in each
# isolation mode, not only the interpreter and the plugin file.
import attrs


@attrs.define
class Reading:
    name: str
    value: int = 0
    tags: list = attrs.Factory(list)


_reading = None


def init(capsule):
    global _reading
    _reading = Reading("bench", 1)


def start_loop():
    pass


def stop_loop():
    pass


def cleanup():
    pass
