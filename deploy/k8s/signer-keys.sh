#!/usr/bin/env bash
# Creates the signer's four key files in DIR (new, 0600) for the Secret image-factory-signer-keys:
#   cosign-signing-key.pem   ECDSA P-256, signs cached assets and installer images (cosign)
#   pcr-signing-key.pem      RSA 2048, signs PCR policies in UKIs
#   uki-signing-key.pem      RSA 4096, Secure Boot (Authenticode) signing key
#   uki-signing-cert.pem     self-signed code-signing certificate of that key
# The file names are the ones deploy/k8s/base/signer.yaml points signer.*_path at. Then:
#   kubectl -n image-factory create secret generic image-factory-signer-keys --from-file=DIR/
# Keep DIR offline (or in your secret manager): these keys sign everything the factory serves, and the
# Secure Boot certificate ends up enrolled in machines' firmware.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
mkdir -p "$dir"
chmod 0700 "$dir"
for name in cosign-signing-key.pem pcr-signing-key.pem uki-signing-key.pem uki-signing-cert.pem; do
    if [ -e "$dir/$name" ]; then
        echo "$dir/$name exists; refusing to overwrite keys" >&2
        exit 1
    fi
done

umask 077
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/cosign-signing-key.pem"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/pcr-signing-key.pem" 2>/dev/null
openssl req -x509 -new -newkey rsa:4096 -nodes -sha256 -days 36500 \
    -subj "/CN=Image Factory SecureBoot" \
    -addext "basicConstraints=critical,CA:FALSE" \
    -addext "keyUsage=critical,digitalSignature" \
    -addext "extendedKeyUsage=codeSigning" \
    -keyout "$dir/uki-signing-key.pem" -out "$dir/uki-signing-cert.pem" 2>/dev/null
echo "wrote $dir/{cosign-signing-key,pcr-signing-key,uki-signing-key,uki-signing-cert}.pem"
