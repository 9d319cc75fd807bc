# tests/unit/unit.mk: what every unit test shares.  Each area registers its
# own test programs in its fragment (src/*.mk).
EXTRA_DIST += tests/unit/tap.h .editorconfig .clang-format
