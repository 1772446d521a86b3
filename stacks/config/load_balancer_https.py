"""The AWS load balancer's HTTPS: what the stack file alone shows to be wrong, refused before a deploy.

An ALB listener takes an ACM certificate of its own region only (ACM certificates are regional; the
listener's create fails with `CertificateNotFound` otherwise), so an ARN naming another region than
`aws:region` is refused here, naming both. `allowPlainHttp` is for a throwaway dev stack: with
`profile: prod` the clients' API keys would cross the internet in clear text.
"""

from __future__ import annotations

import re

from stacks.config.derived import PROFILE_NAMES
from stacks.config.reader import Reader

# arn:<partition>:acm:<region>:<account>:certificate/<id> (aws, aws-cn, aws-us-gov partitions)
_ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:(?P<region>[a-z0-9-]+):\d{12}:certificate/[\w-]+$")


def check(cfg: Reader, region: str, certificate_arn: str | None, allow_plain_http: bool) -> None:
    """Refuses a certificate of another region and plain HTTP in a prod stack (raises SettingsError)."""
    if certificate_arn is not None and (found := _ACM_ARN.match(certificate_arn)):
        if found["region"] != region:
            raise cfg.fail("certificateArn", f"is an ACM certificate of {found['region']}, and aws:region is {region}: "
                                             "a load balancer takes a certificate of its own region only; request "
                                             f"or import the certificate in {region} and set its ARN "
                                             "(pulumi config set certificateArn arn:aws:acm:"
                                             f"{region}:<account>:certificate/<id>)")
    if allow_plain_http and cfg.string("profile", choices=PROFILE_NAMES) == "prod":
        raise cfg.fail("allowPlainHttp", "is true with profile: prod, where API keys must not cross the internet in "
                                         "clear text: set certificateArn (an ACM certificate in aws:region) and "
                                         "dispatcherDomain, then pulumi config rm allowPlainHttp (or use profile: dev "
                                         "for a throwaway stack)")
