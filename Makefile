# Task runner: CI calls these recipes (see .ci/run).
.PHONY: setup test lint fuzz fmt bench up

setup:
	scripts/setup

## The test command of README.md: installs what tests need, then runs every test.
test: setup
	cargo test --workspace --locked

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	# The exchange builds with each of its optional parts alone (redis, durable, log, kube), and the
	# SDK without Redis and the durable journal.
	for features in "" redis durable log kube; do \
	  cargo clippy -p data-exchange --no-default-features --features "$$features" --locked -- -D warnings || exit 1; \
	done
	cargo clippy -p knactor --no-default-features --locked -- -D warnings

## Each fuzz target for 30 s (cargo fuzz, nightly toolchain; see scripts/fuzz).
fuzz: setup
	scripts/fuzz 30

fmt:
	cargo fmt --all

bench:
	cargo bench -p data-exchange --bench write_to_watch

up:
	cargo run --bin knactor -- up apps/hello
