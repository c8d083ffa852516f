# mailcove in a container. UNTESTED: the build machine has no Docker daemon (docs/deploy.md).
#
#   docker build -t mailcove .
#   docker run -it --rm -v mailcove:/var/lib/mailcove mailcove \
#       mailcove --data /var/lib/mailcove setup example.org --hostname mx.example.org --users alice
#   docker run -d --name mailcove --hostname mx.example.org -v mailcove:/var/lib/mailcove \
#       -p 25:25 -p 465:465 -p 587:587 -p 143:143 -p 993:993 -p 110:110 -p 995:995 -p 80:80 mailcove
#
# It runs as the unprivileged user `mailcove` from the start. Docker's default network namespace
# sets net.ipv4.ip_unprivileged_port_start=0, so that user binds the standard ports; with
# --network host it cannot, and mailcove falls back to 2525, 2143, ... (docs/configuration.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MAILCOVE_CONFIG=/var/lib/mailcove/mailcove.toml

RUN useradd --system --user-group --home-dir /var/lib/mailcove --shell /usr/sbin/nologin mailcove \
 && install -d -m 0700 -o mailcove -g mailcove /var/lib/mailcove \
 && install -d -m 0755 -o mailcove -g mailcove /run/mailcove

WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
# uvloop is the optional faster event loop (the `fast` extra); wheels exist for slim's glibc.
RUN pip install --no-cache-dir '.[fast]' && rm -rf /build

WORKDIR /var/lib/mailcove
USER mailcove
VOLUME ["/var/lib/mailcove"]
# SMTP, submissions, submission, IMAP, IMAPS, POP3, POP3S, HTTP (autoconfig)
EXPOSE 25 465 587 143 993 110 995 80 443

# The config in the volume is written by `mailcove setup`; until then the defaults apply
# (data in the volume, TLS with a self-signed certificate, no users yet).
CMD ["sh", "-c", "[ -f \"$MAILCOVE_CONFIG\" ] || unset MAILCOVE_CONFIG; exec mailcove --data /var/lib/mailcove serve"]
