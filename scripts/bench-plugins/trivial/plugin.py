# The benchmarks' trivial plugin: the OpenPLC lifecycle and nothing else, so a
# start-up or memory figure measures the runtime (interpreter, venv activation,
# import of the plugin file, lifecycle calls), not the plugin's own work.


def init(capsule):
    pass


def start_loop():
    pass


def stop_loop():
    pass


def cleanup():
    pass
