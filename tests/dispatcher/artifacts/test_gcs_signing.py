"""The V4 signed URLs against Google's own conformance vectors (googleapis/conformance-tests,
storage/v1/v4_signatures.json): for each, the URL built here is the expected one character for
character, and the expected signature verifies, with the vectors' public dummy service account's
public key, over the string this module signs. So what the fake checks (tests/fakes/gcs.py) is also
what GCS's client libraries sign: the fake and the store cannot share one misreading."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from dispatcher.artifacts.gcs_signing import signed_url

ACCOUNT = "test-iam-credentials@dummy-project-id.iam.gserviceaccount.com"
# The public half of the conformance tests' dummy (inactive) service account key.
PUBLIC_KEY = b"""-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEArD8zIqyKLbX0Nq8o0Jj1
qHEhHhqO3+0OP7TEFx5Vxc6PdwBoFNrfnJRI/S+ZaDYS1avr5Pqpp8g8+UNOMvI1
VsjGM8xjTaxkVv8mmKp6pSmQstTt25pzY1exA2wv4xNWSwWNFNx2kh35+kvTQ/DF
3YA9P7pUU1sKur1PP8OoubWLFO59iy5UE5dX0O/3pjvZ2HAhSXsx2VWtB5nlrHR8
FrKJNLJMEGEDSMz9yRfQaUeYCU9oDYHuiqKQ3rCXi6C82l+3FJw5/ggJ5y7iw8ME
rCFSslcYQRbBVz6ZYKWkEcJhs8BG3/16bfaqNusNlDIJ99I7DmipUngF/HEulYhf
rQIDAQAB
-----END PUBLIC KEY-----
"""
CREDENTIAL = ("X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=test-iam-credentials%40dummy-project-id.iam."
              "gserviceaccount.com%2F20190201%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20190201T090000Z"
              "&X-Goog-Expires=10")
VECTORS = [  # (method, object, query, the URL's query before its signature, the signature)
    ("GET", "test-object", {}, f"{CREDENTIAL}&X-Goog-SignedHeaders=host",
     "95e6a13d43a1d1962e667f17397f2b80ac9bdd1669210d5e08e0135df9dff4e56113485dbe429ca2266487b9d1796ebdee2d7cf682a6"
     "ef3bb9fbb4c351686fba90d7b621cf1c4eb1fdf126460dd25fa0837dfdde0a9fd98662ce60844c458448fb2b352c203d9969cb74efa4b"
     "db742287744a4f2308afa4af0e0773f55e32e92973619249214b97283b2daa14195244444e33f938138d1e5f561088ce8011f4986dda3"
     "3a556412594db7c12fc40e1ff3f1bedeb7a42f5bcda0b9567f17f65855f65071fabb88ea12371877f3f77f10e1466fff6ff6973b74a93"
     "3322ff0949ce357e20abe96c3dd5cfab42c9c83e740a4d32b9e11e146f0eb3404d2e975896f74"),
    ("PUT", "test-object", {}, f"{CREDENTIAL}&X-Goog-SignedHeaders=host",
     "8adff1d4285739e31aa68e73767a46bc5511fde377497dbe08481bf5ceb34e29cc9a59921748d8ec3dd4085b7e9b7772a952afedfcdae"
     "cb3ae8352275b8b7c867f204e3db85076220a3127a8a9589302fc1181eae13b9b7fe41109ec8cdc93c1e8bac2d7a0cc32a109ca02d069"
     "57211326563ab3d3e678a0ba296e298b5fc5e14593c99d444c94724cc4be97015dbff1dca377b508fa0cb7169195de98d0e4ac96c42b9"
     "18d28c8d92d33e1bd125ce0fb3cd7ad2c45dae65c22628378f6584971b8bf3945b26f2611eb651e9b6a8648970c1ecf386bb71327b082"
     "e7296c4e1ee2fc0bdd8983da80af375c817fb1ad491d0bc22c0f51dba0d66e2cffbc90803e47"),
    ("GET", "test-object", {"soufflé": "=%-_.~"},
     f"{CREDENTIAL}&X-Goog-SignedHeaders=host&souffl%C3%A9=%3D%25-_.~",
     "38dd9ca622b80bca10f405e7d9ba0f0fbea719ca84d66078a484c5b54b1ce98e3fa8a0d2065216ed6ac03179be69312dabf428f8171b9"
     "5994bdafe465a6f7893bacc7213a7bf4054ce2d78d4b60c34df24cc43e509ad7c81be47148d43a0e67d50d8fe38c85b0c63f9a51149b4"
     "f3335315946fef8ab34315ce3f6ce01f1831abb3eda5e7e211823855ed1767c65a8c7aeec357de096e3406897acfe092fead51bbea7df"
     "83e25a6180f80c8a0871e4901c370f77f5675f2405be7ccd55fd6dd22a87cf0adfafdb3f6fa99974fcf6c947b62294eebd7954e546c28"
     "f5490a6c50694c0e4882fcfe0d4a4ae8891a92579d6099a9b4c84d9f033a3b339163b6670b7e"),
    ("GET", "test-object", {"prefix": "/foo", "X-Goog-Meta-Foo": "bar"},
     f"{CREDENTIAL}&X-Goog-Meta-Foo=bar&X-Goog-SignedHeaders=host&prefix=%2Ffoo",
     "a07745e1b3d59b85cbe11aa766df72c22468959e7217615dccb7f030234f66b60b37e480f30725ed51f29816362ca8286c619ebb66448"
     "ff1d370be2a4a48aacf20d3d2d6200ed17341a5791baf2ee5cd9c2823adacc6264f66c8a54fa887e1bce3c55cf78fb2f6a52618cf09d6"
     "f945f63d148052a7b66a75e075ff5065828a806b84bdc49a42399be7483225c720d5e18a6160f79d815f433e7921694fe1d0410998517"
     "93c2581db0e5ca503cfb566e414f900ceede5f9b22030edd32ab20b6f7f9fb2afba89098b9364e03397c03a94eac3a140c99979b87868"
     "44fb4f6c62c1985378939dd1bbaea8e41b9100dda85a27733171cc78d96ee362ea2c3432f4d8"),
]


@pytest.mark.parametrize(("method", "name", "query", "expected_query", "signature"), VECTORS,
                         ids=["simple GET", "simple PUT", "query encoding", "query ordering"])
def test_a_signed_url_is_googles_own_for_the_conformance_vectors(method: str, name: str, query: dict[str, str],
                                                                 expected_query: str, signature: str) -> None:
    signed: list[bytes] = []

    def sign(payload: bytes) -> bytes:
        signed.append(payload)
        return bytes.fromhex(signature)

    at = dt.datetime(2019, 2, 1, 9, 0, 0, tzinfo=dt.UTC)
    url = signed_url("https://storage.googleapis.com", "test-bucket", name, method, 10, query, ACCOUNT, sign, at)
    assert url == f"https://storage.googleapis.com/test-bucket/{name}?{expected_query}&X-Goog-Signature={signature}"
    public = serialization.load_pem_public_key(PUBLIC_KEY)
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(bytes.fromhex(signature), signed[0], padding.PKCS1v15(), hashes.SHA256())  # raises if it differs
