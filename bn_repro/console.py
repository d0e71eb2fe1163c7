"""Console messages for the person running the job: only process 0 prints them."""

import jax


def say(message: str) -> None:
    if jax.process_index() == 0:
        print(message, flush=True)
