// The Intel SGX Root CA: the only trust anchor of DCAP quote verification (src/enclave/quote-verify.ts).
// Copied from test/data/attestation/intel-sgx-root-ca.pem (Intel's public root, the 2049 certificate).
// A quote's chain is accepted only when its last certificate is byte-identical to this one; the pinned
// SHA-256 fingerprint is re-checked when the module loads, so an edit to the PEM text cannot go unnoticed.
import { createHash, X509Certificate } from 'node:crypto';

export const INTEL_SGX_ROOT_CA_PEM = `
-----BEGIN CERTIFICATE-----
MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIw
aDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENv
cnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJ
BgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIzNTk1OVowaDEaMBgG
A1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0
aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYT
AlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi7
1OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOB
uzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJ
MEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50
ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SV
Ur9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYI
KoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwg
AiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI=
-----END CERTIFICATE-----
`.trimStart();

/** SHA-256 of the DER certificate, as Intel publishes it (lower-case hex, no separators). */
export const INTEL_SGX_ROOT_CA_SHA256 = '44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3';

/** The pinned root, parsed once. Throws at load when the PEM text does not match the pinned fingerprint. */
export const intelSgxRootCa: X509Certificate = (() => {
  const cert = new X509Certificate(INTEL_SGX_ROOT_CA_PEM);
  const fingerprint = createHash('sha256').update(cert.raw).digest('hex');
  if (fingerprint !== INTEL_SGX_ROOT_CA_SHA256) throw new Error(`Intel SGX Root CA: fingerprint ${fingerprint} is not the pinned one`);
  return cert;
})();
