#!/usr/bin/env bash
# Make sure the test suite's real services answer: MariaDB on 127.0.0.1:3306 (root, empty
# password) and Redis on 127.0.0.1:6379. Installs them from Debian's packages when missing, and
# promtool (Debian's prometheus package), which the metrics test runs on its scrape.
set -euo pipefail
have_port() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# the package's own server is not wanted: no service is started in a container, and --no-install-
# recommends leaves out the node exporter
command -v promtool >/dev/null || apt_install --no-install-recommends prometheus

if ! have_port 6379; then
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi

if ! have_port 3306; then
  command -v mariadbd >/dev/null || apt_install mariadb-server
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  for _ in $(seq 1 60); do have_port 3306 && break; sleep 0.5; done
  # a fresh Debian install lets root in only through the socket: allow TCP with no password
  mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('')" \
    2>/dev/null || true
fi

for port in 6379 3306; do
  for _ in $(seq 1 60); do have_port "$port" && break; sleep 0.5; done
  have_port "$port" || { echo "service on port $port did not start" >&2; exit 1; }
done
