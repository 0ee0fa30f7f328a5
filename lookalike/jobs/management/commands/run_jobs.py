import signal

from django.core.management.base import BaseCommand, CommandError

from lookalike.jobs.worker import work


class Command(BaseCommand):
    help = "Run queued background jobs (reindex, training) until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Exit when the queue is empty.")
        parser.add_argument("--poll", type=float, default=1.0, help="Seconds between polls.")

    def handle(self, *args, once, poll, **options):
        # NaN fails the comparison too; 0 would poll the database without pause.
        if not 0.05 <= poll <= 3600:
            raise CommandError("--poll must be from 0.05 to 3600 seconds.")
        stopping = []
        signal.signal(signal.SIGTERM, lambda *a: stopping.append(True))
        self.stdout.write("Job worker started; waiting for jobs.")
        try:
            work(poll_interval=poll, once=once, stop=lambda: bool(stopping), finished=self.report)
        except KeyboardInterrupt:
            pass
        self.stdout.write("Job worker stopped.")

    def report(self, job):
        """A line per job, whatever the project's logging shows: what ran, how it ended,
        in how long, and its message."""
        seconds = (job.finished_at - job.started_at).total_seconds() if job.started_at else 0
        line = f"Job #{job.pk} ({job.lock_key}) {job.status} in {seconds:.1f} s: {job.message}"
        style = self.style.SUCCESS if job.status == job.Status.SUCCEEDED else self.style.ERROR
        self.stdout.write(style(line))
