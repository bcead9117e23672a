"""``synchrony sim-board``: the board top (``SystemTop``, UART pins included) under Verilator, served on
a TCP socket, so that ``synchrony host --port socket://127.0.0.1:PORT ...`` drives it exactly as it
drives a board. The simulated UART runs at 4 clock cycles per bit; the clock stops while the host
is silent."""

import sys
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers):
    parser = subparsers.add_parser(
        "sim-board", help="serve the simulated board (SystemTop under Verilator) on a TCP socket",
        description="Run the board top under Verilator and bridge its UART to a TCP socket for `synchrony host`.")
    parser.add_argument("--listen", default="127.0.0.1:7777", metavar="HOST:PORT",
                        help="address to listen on (port 0: any free port; default 127.0.0.1:7777)")
    parser.add_argument("--port-file", type=Path, help="write the port here once the board is ready")
    parser.add_argument("--sessions", type=int, default=0,
                        help="exit after this many host connections have closed (default: serve forever)")
    parser.add_argument("--rule", default="lls", choices=("lls", "lls-m", "drtp"))
    parser.add_argument("--basis", default=None, choices=("square", "sin"))
    parser.add_argument("--dataset", default="digits", help="sizes the network's inputs and classes (default digits)")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--layers", help="inputs,hidden...,classes (default: inputs,128,classes)")
    parser.add_argument("--seed", type=int, default=0, help="weight-initialisation seed (as synchrony sim)")
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--host-divider", type=int, default=1, metavar="N",
                        help="run the protocol on a clock N times slower than the engine's, through the clock "
                             "crossings (the iCEBreaker's 12 and 48 MHz: 4; default 1, one clock)")
    parser.add_argument("--waves", action="store_true", help="record a waveform of the whole session")
    parser.set_defaults(func=run)


def parse_listen(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen {text!r}: expected HOST:PORT")
    return host, int(port)


def build_config(args):
    from golden.datasets import load_dataset
    from sim.cli import _config

    dataset = load_dataset(args.dataset, data_dir=args.data_dir)
    return _config(args, dataset)


def run(args):
    from sim.board_sim import run_board

    host, port = parse_listen(args.listen)
    if args.lanes < 1 or args.sessions < 0 or args.host_divider < 1:
        raise ValueError("--lanes and --host-divider must be positive and --sessions >= 0")
    config = build_config(args)
    print(f"simulated board: network {'-'.join(map(str, config.layers))} rule={config.rule} lanes={args.lanes} "
          f"config={config.digest()[:12]}")
    print("building the Verilator model (cached after the first run) ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="synchrony-board-") as tmp:
        port_file = args.port_file or Path(tmp) / "port"
        port_file.unlink(missing_ok=True)
        outcome = {}

        def work():
            try:
                run_board(config, args.lanes, "board_serve", mode="uart", host_divider=args.host_divider,
                          waves=args.waves, host=host, port=port,
                          port_file=str(port_file), sessions=args.sessions, run_name=f"serve-{port}")
            except BaseException as error:   # reported in the main thread
                outcome["error"] = error

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        while thread.is_alive() and not port_file.exists():
            time.sleep(0.1)
        if port_file.exists():
            print(f"listening on socket://{host}:{port_file.read_text().strip()}", flush=True)
        thread.join()
    if "error" in outcome:
        print(f"synchrony sim-board: error: {outcome['error']}", file=sys.stderr)
        return 1
    return 0
