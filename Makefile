# Two entry points, both from a clean clone with nothing installed beforehand.
.PHONY: demo test bench

demo:  ## install into .venv and run the example sweep (the main job)
	scripts/demo

test:  ## install everything needed and run lint, type checks and the whole test suite
	scripts/test

bench:  ## quick benchmark against peer tuners (a few minutes)
	scripts/bench
