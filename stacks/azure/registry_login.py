"""Push credentials for an Azure Container Registry whose admin user is off.

Docker cannot log in with an Entra ID token itself: ACR exchanges it for a registry refresh token
(`POST https://<login server>/oauth2/exchange`, grant_type=access_token; what `az acr login
--expose-token` does, https://azure.github.io/acr/AAD-OAuth.html), used as the password of the
all-zero user. The token is the deploying identity's own ARM token (`getClientToken`), so pushing
needs AcrPush (or Owner/Contributor) on the registry and nothing stored. One request, a timeout,
three tries on a connection error or a 5xx; any other answer fails the deployment naming the status.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request

USERNAME = "00000000-0000-0000-0000-000000000000"  # ACR's user for a refresh token
TIMEOUT_SECONDS = 15
ATTEMPTS = 3


class ExchangeError(RuntimeError):
    pass


def exchange(login_server: str, access_token: str, tenant_id: str, *, scheme: str = "https",
             attempts: int = ATTEMPTS, pause_seconds: float = 2.0) -> str:
    """The registry refresh token for `access_token`; "" when there is no token to exchange (a
    preview under mocks, or an identity that has none), which docker-build then fails to push with."""
    if not access_token:
        return ""
    body = urllib.parse.urlencode({"grant_type": "access_token", "service": login_server.split(":")[0],
                                   "tenant": tenant_id, "access_token": access_token}).encode()
    url = f"{scheme}://{login_server}/oauth2/exchange"
    last = ""
    for attempt in range(attempts):
        request = urllib.request.Request(url, data=body, method="POST",  # noqa: S310 - scheme is https or a test's http
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310
                token = json.loads(answer.read()).get("refresh_token")
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
            if exc.code < 500:
                break
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            last = type(exc).__name__
        except ValueError:
            last = "an answer that is not JSON"
            break
        else:
            if isinstance(token, str) and token:
                return token
            last = "an answer without refresh_token"
            break
        if attempt + 1 < attempts:
            time.sleep(pause_seconds)
    raise ExchangeError(f"{login_server} did not exchange the deploying identity's token for a registry token "
                        f"({last}): the identity needs AcrPush on the registry (az role assignment create "
                        "--role AcrPush --assignee <you> --scope <registry id>)")
