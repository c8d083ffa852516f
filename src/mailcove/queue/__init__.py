"""The outbound queue: the runner inside `mailcove serve` that delivers queued recipients by MX
(or relay host / transport), retries with backoff, bounces with DSNs and signs with DKIM."""

from mailcove.queue.runner import QueueRunner, backoff

__all__ = ["QueueRunner", "backoff"]
