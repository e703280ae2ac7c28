"""The worker as ``python -m worker run`` builds it, with the GetRecords path
chosen on the command line, so one benchmark run can compare the two.

Run:  .venv/bin/python bench/worker_proc.py --get-records boto3|fast
(settings from the environment, as for ``ven-worker run``)
"""

import argparse
import sys
import threading

from worker.config import load_settings
from worker.kinesis.client import KinesisClient, make_boto3_client
from worker.observe import Observability
from worker.observe.logs import setup_logging
from worker.runtime import build_worker, install_signal_handlers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--get-records", choices=("boto3", "fast"),
                        default="fast")
    args = parser.parse_args(argv)

    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format,
                  worker_id=settings.worker_id)
    stop = threading.Event()
    observe = Observability.start(settings, settings.worker_id)
    try:
        kinesis = KinesisClient(
            make_boto3_client(settings.kinesis_endpoint, settings.aws_region),
            stop=stop, on_retry=observe.metrics.retried,
            fast_get_records=args.get_records == "fast")
        worker = build_worker(settings, stop, observe, kinesis=kinesis)
        install_signal_handlers(worker)
        return worker.run()
    finally:
        observe.close()


if __name__ == "__main__":
    sys.exit(main())
