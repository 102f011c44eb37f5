"""What went wrong connecting to the broker, in one of four sentences.

paho reports a refused CONNACK as a reason code and a failed TLS handshake
or TCP connect only as "connection failed"; an operator needs to know which
of these it is, because each has a different fix: the credentials
(authentication refused), the registration (not authorised), the CA file
(certificate not trusted), or the network/broker (not reachable).
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

#: MQTT v5 CONNACK reason codes (v3.1.1's return codes 4 and 5 map onto 0x86 and 0x87). mosquitto 2.0
#: answers 0x87 "Not authorized" to a wrong password, an unknown user and an anonymous client alike, so at
#: CONNECT all three are the credentials being refused; "not authorised" is a refused subscription (SUBACK).
REFUSED_CREDENTIALS = {0x86, 0x87, 0x8C}  # bad user name or password, not authorized, bad auth method


def connack_sentence(reason: Any, host: str, port: int, username: str | None, who: str) -> str:
    """The sentence for a refused CONNACK (``reason`` is paho's ReasonCode)."""
    code = getattr(reason, "value", None)
    if code in REFUSED_CREDENTIALS:
        if not username:
            return (f"broker {host}:{port} refused the {who} without credentials (authentication refused: {reason}); "
                    "give the username and password it was registered with")
        return (f"broker {host}:{port} refused the credentials of user {username!r} (authentication refused: "
                f"{reason}); check the password, and that the user is registered on the broker "
                "(deploy/mosquitto/add-collector.sh, add-device.sh)")
    return f"broker {host}:{port} refused the {who} ({reason}); see the broker's log"


def suback_sentence(reason: Any, host: str, port: int, username: str | None, topic: str) -> str:
    """The sentence for a refused subscription: connected, but not allowed to read ``topic``."""
    return (f"broker {host}:{port} does not authorise user {username!r} to subscribe to {topic} (not authorised: "
            f"{reason}); register it as a collector (deploy/mosquitto/add-collector.sh), not as a device")


def probe(host: str, port: int, ca_file: str | None, timeout_s: float = 3.0) -> str:
    """Why no CONNACK came: the TLS certificate not trusted, or the broker not reachable ('' if neither)."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except OSError as exc:
        return (f"broker {host}:{port} is not reachable ({exc.strerror or exc}): check that mosquitto runs there "
                "and that the port is open to this machine")
    with sock:
        if not ca_file:
            return ""
        try:
            context = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            return f"the CA file {ca_file} cannot be loaded ({exc}); give the broker's CA certificate in PEM"
        try:
            with context.wrap_socket(sock, server_hostname=host) as tls:
                tls.settimeout(timeout_s)
        except ssl.SSLCertVerificationError as exc:
            return (f"the TLS certificate of broker {host}:{port} is not trusted ({exc.verify_message}); give the "
                    f"CA certificate that signed it (make-certs.sh's ca.crt) instead of {ca_file}, and dial a "
                    "name the certificate carries")
        except (OSError, ssl.SSLError) as exc:
            return (f"broker {host}:{port} is not reachable over TLS ({exc}): check that this port is "
                    "mosquitto's TLS listener")
    return ""
