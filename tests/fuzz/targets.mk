# One block per fuzz target, made by the macro-like pattern below:
#   replay_NAME: corpus replay under make check; fuzz_NAME: libFuzzer build.
