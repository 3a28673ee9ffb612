#!/usr/bin/env bash
# Reproducibility check for `make release`: copies the working tree (tracked and untracked,
# not ignored, files) into two directories of different names and depths, builds the release in
# each with the same VERSION, REVISION and SOURCE_DATE_EPOCH, and compares the SHA256SUMS files.
# Exits non-zero when any artefact differs. `make release-check` runs it; it is not part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${VERSION:?}" "${SOURCE_DATE_EPOCH:?}"
REVISION="${REVISION:-}"
GO="${GO:-go}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
a="$work/a/jwt-authz"
b="$work/second-copy/somewhere/deeper/src"
mkdir -p "$a" "$b"
for dir in "$a" "$b"; do
	git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$dir"
done

for dir in "$a" "$b"; do
	echo "== make release in $dir"
	(cd "$dir/release" && "$GO" run ./cmd/release -root .. -out ../dist -version "$VERSION" \
		-revision "$REVISION" -source-date-epoch "$SOURCE_DATE_EPOCH")
done

echo "== SHA256SUMS of the first build"
cat "$a/dist/SHA256SUMS"
if diff -u "$a/dist/SHA256SUMS" "$b/dist/SHA256SUMS"; then
	echo "release-check: the two builds are identical ($(wc -l <"$a/dist/SHA256SUMS") artefacts)"
else
	echo "release-check: the builds differ" >&2
	exit 1
fi
