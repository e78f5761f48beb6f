#!/usr/bin/python3
"""The web console in a real browser: headless Chromium driven by Selenium
against the whole server as shipped (primary-server in secure mode with its
private Redis, broker, workers, updater and primary-web).

It logs in (a wrong password first), registers a serial and unlocks it with
a code from primary-vendor, checks the Overview's history charts over a
history written into its Redis (points, last values, hover text; a PNG of
each chart), reserves a license through the Computers form,
downloads the setup file and runs a Client with it, finds, sorts, filters
and pages the computers, watches the Activity page receive events live over
Server-Sent Events (made by primaryctl and the Client while the page stays
open), syncs the vendor feed, approves, holds and imports a bundle on the
Updates page, reads the Firewall page and logs out. Every page must render
with the shipped CSS and JavaScript under the console's Content-Security-
Policy: the browser's console log must hold no CSP violation and no error
other than the expected 401 of the wrong password.

A PNG of each page (1280x800) goes to $PRIMARY_SCREENSHOTS if set, else
to SCREENSHOT_DIR (ctest passes build/screenshots), else ./screenshots;
docs/screenshots/ holds a set.

Usage: browser_test.py BIN_DIR [SCREENSHOT_DIR]  (exit 0 on success)

Needs Debian's chromium, chromium-driver and python3-selenium; run with
/usr/bin/python3. Chromium runs as root in CI, hence --no-sandbox. A machine
where Chromium cannot start fails the test: it is never skipped.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

PASSWORD = "correct horse battery staple"
SERIAL = "SN-BROWSER-1"
WAIT_S = 60  # generous: a loaded 2-core CI machine; nothing is timed


class Failure(Exception):
    pass


T0 = time.monotonic()


def phase(name):
    print("[%5.1f s] %s" % (time.monotonic() - T0, name), flush=True)


def check(condition, message):
    if not condition:
        raise Failure(message)


def run(argv, stdin=None, timeout=60):
    """Runs a tool; returns its stdout, fails on a non-zero exit."""
    p = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise Failure("%s exited %d: %s%s" % (" ".join(argv), p.returncode, p.stdout, p.stderr))
    return p.stdout


def wait_for(what, predicate, timeout=WAIT_S, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise Failure("timed out after %d s waiting for %s" % (timeout, what))


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def free_port():
    """A TCP port free on 127.0.0.1 right now (the system's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid):
    """Pids of every live descendant of pid (from /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = read_text("/proc/%s/stat" % entry)
        if not stat:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def alive(pid):
    stat = read_text("/proc/%d/stat" % pid)
    return bool(stat) and stat[stat.rindex(")") + 2] != "Z"


class Server:
    """primary-server on a fresh data dir, secure (CURVE), every port chosen
    by the system: the front door and event stream from the endpoints file,
    the console's URL from DATA/run/web.address."""

    def __init__(self, bin_dir, tmp):
        self.bin_dir = bin_dir
        self.tmp = tmp
        self.data = os.path.join(tmp, "data")
        self.log = os.path.join(tmp, "server.log")
        self.proc = None
        self.pids = []  # everything it started, for the cleanup

    def bin(self, name):
        return os.path.join(self.bin_dir, name)

    def start(self, vendor_pub, feed_url):
        """Starts it on free ports (the front door and the event stream as an
        installation has them: fixed, so the setup file and the firewall
        rules name them); a port taken meanwhile by another program means a
        new try on other ones."""
        for attempt in range(3):
            with open(self.log, "a") as log:
                self.proc = subprocess.Popen(
                    [self.bin("primary-server"), "--data-dir", self.data,
                     "--front", "tcp://127.0.0.1:%d" % free_port(), "--events", "tcp://127.0.0.1:%d" % free_port(),
                     "--web", "127.0.0.1:0", "--vendor-key", vendor_pub,
                     "--update-feed", feed_url, "--sync-interval-s", "0",
                     "--license-workers", "1", "--admin-workers", "1", "--updater-workers", "1",
                     "--heartbeat-ms", "200"],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

            def ready():
                if self.proc.poll() is not None:
                    return "exited"
                self.pids = sorted(set(self.pids) | set(descendants(self.proc.pid)))
                return self.front() and self.url() and "ready"
            if wait_for("primary-server's front door and console address", ready) == "ready":
                break
            if "Address already in use" not in read_text(self.log) or attempt == 2:
                raise Failure("primary-server exited with %d:\n%s" % (self.proc.returncode, read_text(self.log)))
            with open(self.log, "a") as log:
                log.write("--- a port was taken meanwhile: trying other ports ---\n")
        # Every service answers (the console's pages need them all).
        def serving():
            up = {i["service"] for i in json.loads(self.ctl("services", "--json")) if i.get("state") == "up"}
            return {"license", "license.control", "admin", "update", "update.control"} <= up
        wait_for("the workers to serve", serving, interval=0.5)

    def front(self):
        for line in read_text(os.path.join(self.data, "run", "endpoints")).splitlines():
            if line.startswith("front="):
                return line[len("front="):]
        return ""

    def url(self):
        return read_text(os.path.join(self.data, "run", "web.address")).strip()

    def ctl(self, *args):
        """primaryctl as the server's own admin (its internal key)."""
        keys = os.path.join(self.data, "keys")
        return run([self.bin("primaryctl"), "--server", self.front(),
                    "--server-key", os.path.join(keys, "server.pub"),
                    "--client-key", os.path.join(keys, "internal.key"), "--timeout-ms", "10000"] + list(args))

    def redis(self, *args):
        """A command to the server's private Redis (redis-cli on its socket)."""
        env = dict(os.environ, REDISCLI_AUTH=read_text(os.path.join(self.data, "redis", "password")).strip())
        out = subprocess.run(["redis-cli", "-s", os.path.join(self.data, "run", "redis.sock")] + list(args),
                             env=env, capture_output=True, text=True, timeout=30)
        check(out.returncode == 0 and not out.stdout.startswith("ERR"), "redis-cli %r: %s%s" % (args, out.stdout, out.stderr))
        return out.stdout

    def stop(self):
        """SIGTERM, then SIGKILL; then any child still there (children get
        SIGTERM from the kernel when the supervisor dies) by its pid."""
        if self.proc is None:
            return
        self.pids = sorted(set(self.pids) | set(descendants(self.proc.pid)))
        clean = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                clean = self.proc.wait(timeout=30) == 0
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        deadline = time.monotonic() + 10
        while any(alive(p) for p in self.pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for p in self.pids:
            if alive(p):
                os.kill(p, signal.SIGKILL)
        return clean


def start_browser(tmp):
    """Headless Chromium with a fresh profile; fails (never skips) when it
    cannot start."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        raise Failure("python3-selenium is missing (%s): apt-get install chromium chromium-driver "
                      "python3-selenium, and run with /usr/bin/python3" % e)
    for path in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        check(os.access(path, os.X_OK), "%s is missing: apt-get install chromium chromium-driver" % path)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--user-data-dir=" + os.path.join(tmp, "profile"), "--window-size=1280,800",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-sync", "--lang=en-US"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {
        "download.default_directory": os.path.join(tmp, "downloads"),
        "download.prompt_for_download": False,
    })
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver",
                                                  log_path=os.path.join(tmp, "chromedriver.log")),
                                  options=options)
    except Exception as e:  # noqa: BLE001 - any failure to start is the message
        raise Failure("Chromium could not start (headless, --no-sandbox): %s\nchromedriver log:\n%s"
                      % (e, read_text(os.path.join(tmp, "chromedriver.log"))[-3000:]))
    driver.set_page_load_timeout(WAIT_S)
    # Pages (and screenshots) of 1280x800 CSS pixels, whatever the window.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    # Let downloads through without a prompt in the headless browser.
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": os.path.join(tmp, "downloads")})
    return driver


class Console:
    """The browser on the console: navigation, waits, screenshots, and the
    browser's console log gathered page by page."""

    def __init__(self, driver, base, shots):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
        self.d = driver
        self.base = base
        self.shots = shots
        self.By = By
        self.WebDriverWait = WebDriverWait
        self.log = []  # (page path, entry)

    def wait(self, what, condition, timeout=WAIT_S):
        from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
        try:
            # An element read while the page is being replaced is stale: ask again.
            return self.WebDriverWait(self.d, timeout, poll_frequency=0.2,
                                      ignored_exceptions=(StaleElementReferenceException,)).until(
                lambda d: condition())
        except TimeoutException:
            raise Failure("timed out after %d s waiting for %s on %s\n--- page text ---\n%s"
                          % (timeout, what, self.d.current_url, self.page_text()[:3000]))

    def reload_until(self, what, predicate):
        """Reloads the page until predicate() holds (for work the server
        finishes after answering, such as an update job)."""
        def attempt():
            if predicate():
                return True
            self.drain_log()
            self.d.refresh()
            return False
        self.wait(what, attempt)

    def drain_log(self):
        path = self.path()
        for entry in self.d.get_log("browser"):
            self.log.append((path, entry))

    def open(self, path):
        self.drain_log()
        self.d.get(self.base + path)
        self.wait("the page to load", lambda: self.d.execute_script("return document.readyState") == "complete")

    def path(self):
        url = self.d.current_url
        return url[len(self.base):] if url.startswith(self.base) else url

    def page_text(self):
        return self.d.execute_script("return document.body ? document.body.innerText : ''")

    def text(self, css="body"):
        found = self.d.find_elements(self.By.CSS_SELECTOR, css)
        return found[0].text if found else ""

    def find(self, css):
        return self.wait("element " + css, lambda: (self.d.find_elements(self.By.CSS_SELECTOR, css) or [None])[0])

    def all(self, css):
        return self.d.find_elements(self.By.CSS_SELECTOR, css)

    def submit(self, form_css, fields=None, button_text=None):
        """Fills a form's fields by name, clicks its submit button, waits
        for the next page."""
        form = self.find(form_css)
        for name, value in (fields or {}).items():
            field = form.find_element(self.By.NAME, name)
            field.clear()
            field.send_keys(value)
        buttons = form.find_elements(self.By.CSS_SELECTOR, "button[type=submit]")
        if button_text:
            buttons = [b for b in buttons if b.text == button_text]
        check(buttons, "no submit button in %s" % form_css)
        self.mark_page()
        buttons[0].click()
        self.wait("the form's answer", self._replaced)
        self.wait("the page to load", lambda: self.d.execute_script("return document.readyState") == "complete")

    def mark_page(self):
        """Marks the document shown now, so that _replaced() can tell when
        a click has brought the next one."""
        self.drain_log()
        self.d.execute_script("window.__primaryOldPage = true")

    def _replaced(self):
        """True once the window shows a new document: the marker set on the
        old one is gone. Asked mid-navigation, the driver may raise (which
        error depends on the chromedriver version); that only means "not
        yet"."""
        from selenium.common.exceptions import WebDriverException
        try:
            return self.d.execute_script("return window.__primaryOldPage !== true")
        except WebDriverException:
            return False

    def flash(self):
        return self.text("div.flash")

    def error(self):
        return self.text("div.error")

    def heading(self):
        return self.text("main h1")

    def shot(self, name):
        path = os.path.join(self.shots, name + ".png")
        check(self.d.save_screenshot(path), "could not save " + path)
        print("screenshot %s" % path)

    def table_rows(self, css):
        """Rows of a table body as lists of cell texts."""
        rows = []
        for tr in self.all(css + " tbody tr"):
            rows.append([td.text for td in tr.find_elements(self.By.TAG_NAME, "td")])
        return rows


def make_releases(bin_dir, tmp, vendor_key):
    """A signed feed with client 1.0.0 (file://) and an offline bundle with
    client 1.1.0 issued after it."""
    now = int(time.time() * 1000)
    out = {}
    for name, version, issued in (("feed", "1.0.0", now - 120000), ("bundle", "1.1.0", now - 60000)):
        d = os.path.join(tmp, "releases-" + name)
        os.makedirs(d)
        with open(os.path.join(d, "client-%s.bin" % version), "wb") as f:
            f.write(os.urandom(50000))
        with open(os.path.join(d, "releases.toml"), "w") as f:
            f.write('[[release]]\ncomponent = "client"\nversion = "%s"\nchannel = "stable"\n'
                    'file = "client-%s.bin"\nnotes = "browser test release"\n' % (version, version))
        target = os.path.join(d, "feed" if name == "feed" else "bundle.tar")
        run([os.path.join(bin_dir, "primary-vendor"), "sign-feed" if name == "feed" else "bundle",
             "--key", vendor_key, "--dir", d, "--out", target, "--issued", str(issued)])
        out[name] = target
    return out


def console_problems(log):
    """Entries of the browser's console log that are errors: CSP
    violations, JavaScript errors, failed loads. The one expected entry is
    the 401 answer to the wrong password."""
    problems = []
    for path, e in log:
        message = e.get("message", "")
        if e.get("level") not in ("SEVERE", "WARNING") and "Content Security Policy" not in message:
            continue
        if (e.get("source") == "network" and "/login" in message and "401" in message
                and path.startswith("/login")):
            continue
        problems.append("%s: [%s %s] %s" % (path, e.get("level"), e.get("source"), message))
    return problems


def scenario(server, c, tmp):
    By = c.By
    from selenium.webdriver.support.ui import Select

    phase("login")
    # ---- login: no session means the login page; a wrong password is refused
    c.open("/")
    c.wait("the redirect to /login", lambda: c.path().startswith("/login"))
    c.find("input[name=password]")
    c.submit("form[action='/login']", {"password": "not the password"})
    c.wait("the wrong-password message", lambda: "Wrong password." in c.error())
    check(c.path().startswith("/login"), "a wrong password left the login page: " + c.path())
    check(not c.d.get_cookie("ps_session"), "a wrong password gave a session cookie")
    # The stylesheet is applied under the CSP (a style from /static/style.css).
    button_bg = c.find("button[type=submit]").value_of_css_property("background-color")
    check(button_bg in ("rgba(31, 58, 95, 1)", "rgb(31, 58, 95)"), "style.css not applied: button " + button_bg)
    c.shot("01-login")
    c.submit("form[action='/login']", {"password": PASSWORD})
    c.wait("the overview after login", lambda: c.heading() == "Overview")
    cookie = c.d.get_cookie("ps_session")
    check(cookie and cookie.get("httpOnly"), "session cookie missing or not HttpOnly: %r" % (cookie,))
    check(cookie.get("sameSite") == "Strict", "session cookie not SameSite=Strict: %r" % (cookie,))

    phase("overview")
    # ---- overview: numbers, register, unlock
    def count(key):
        return int(c.find("#count-%s b" % key).text)
    check(count("purchased") == 0 and count("reserved") == 0, "a fresh server shows licenses: " + c.text(".counts"))
    c.wait("the services table", lambda: "license" in [r[0] for r in c.table_rows("section.card table:not(.kv)") if r])
    c.submit("form[action='/register']", {"serial": SERIAL})
    c.wait("the registration flash", lambda: "registered" in c.flash())
    registration = c.find("#registration").text.strip()
    check(registration and registration in c.flash(), "registration code %r not in the flash %r" % (registration, c.flash()))
    unlock_code = run([server.bin("primary-vendor"), "unlock", "--key", os.path.join(tmp, "vendor", "vendor.key"),
                       "--registration", registration, "--licenses", "25"]).strip()
    c.submit("form[action='/unlock']", {"unlock_code": unlock_code})
    c.wait("the unlock flash", lambda: "Unlocked serial %s for 25 licenses." % SERIAL in c.flash())
    check(count("purchased") == 25, "purchased after the unlock: " + c.text(".counts"))
    check(c.find("#serial").text == SERIAL, "serial shown: " + c.text("#serial"))
    c.shot("02-overview")

    phase("history charts")
    # ---- the Overview's charts over a known history: 48 hours (purchased 25,
    # reserved i/2, 10 i heartbeats), 30 days of update data (d MiB)
    now_ms = int(time.time() * 1000)
    hour, day = 3600 * 1000, 24 * 3600 * 1000
    for i in range(1, 49):
        start_s = (now_ms // hour - (48 - i)) * 3600
        reserved, active, lost = i // 2, i // 4, i // 8
        server.redis("HSET", "ps:hist:h:%d" % start_s, "purchased", "25", "reserved", str(reserved), "active", str(active),
                     "lost", str(lost), "never_seen", str(reserved - active - lost), "heartbeats", str(10 * i))
    for d in range(1, 31):
        start_s = (now_ms // day - (30 - d)) * 86400
        server.redis("HSET", "ps:hist:d:%d" % start_s, "purchased", "25", "reserved", str(d), "bytes_served", str(d << 20))
    c.open("/")
    c.wait("the charts", lambda: len(c.all("figure.chart")) == 4)
    for chart, points, last in (("licenses", "48", "25"), ("fleet", "48", None), ("heartbeats", "48", "480"),
                                ("downloads", "30", "30")):
        fig = c.find("#chart-" + chart)
        check(fig.get_attribute("data-points") == points,
              "chart %s: %s points, not %s" % (chart, fig.get_attribute("data-points"), points))
        if last:
            check(fig.get_attribute("data-last") == last,
                  "chart %s: last value %s, not %s" % (chart, fig.get_attribute("data-last"), last))
    dots = c.all("#chart-licenses circle.dot[data-series=reserved]")
    check(len(dots) == 48, "%d reserved dots" % len(dots))
    check(len(c.all("#chart-heartbeats rect.bar")) == 48, "heartbeat bars: %d" % len(c.all("#chart-heartbeats rect.bar")))
    # (The current hour is the admin worker's to overwrite; the one before is not.)
    tip = dots[-2].find_element(By.TAG_NAME, "title").get_attribute("textContent")
    check(tip.endswith(": reserved 23 licenses"), "hover text of a reserved point: %r" % tip)
    for n, chart in ((8, "licenses"), (9, "fleet"), (10, "heartbeats"), (11, "downloads")):
        path = os.path.join(c.shots, "%02d-chart-%s.png" % (n, chart))
        fig = c.find("#chart-" + chart)
        c.d.execute_script("arguments[0].scrollIntoView(true)", fig)
        check(fig.screenshot(path), "could not save " + path)
        print("screenshot %s" % path)

    phase("computers")
    # ---- computers: reserve through the form, the computer's page, its setup file
    c.open("/computers")
    c.submit("form[action='/computers/reserve']", {"computer": "browser-pc-1"})
    c.wait("the computer's page", lambda: c.path() == "/computers/BROWSER-PC-1")
    license = c.find("#license").text
    check(re.match(r"\S{6,}$", license), "no license on the computer page: %r" % license)
    check("Reserved license %s for BROWSER-PC-1" % license in c.flash(), "reserve flash: " + c.flash())
    downloads = os.path.join(tmp, "downloads")
    c.find("a#setup").click()
    setup_path = os.path.join(downloads, "setup-BROWSER-PC-1.json")
    wait_for("the downloaded setup file", lambda: os.path.exists(setup_path) and read_text(setup_path).endswith("\n"))
    with open(setup_path) as f:
        setup = json.load(f)
    check(setup.get("computer") == "BROWSER-PC-1" and setup.get("license") == license,
          "setup file does not match the page: %r" % setup)
    check(server.front() in setup.get("endpoints", []) and setup.get("server_key"),
          "setup file lacks the front door or the server key: %r" % setup)
    # More computers for sorting, filtering and paging.
    server.ctl("reserve", "alpha-pc", "zulu-pc", "mid-pc", "beta-pc")
    # A Client installed with the downloaded setup file gets licensed.
    client_log = os.path.join(tmp, "client.log")
    with open(client_log, "w") as log:
        rc = subprocess.call([server.bin("primary-client"), "--setup", setup_path,
                              "--client-version", "1.0.0", "--duration", "3", "--time-scale", "0.01"],
                             stdout=log, stderr=subprocess.STDOUT, timeout=120)
    check(rc == 0, "primary-client with the browser's setup file exited %d:\n%s" % (rc, read_text(client_log)))

    phase("search")
    # Search opens the computer's page (the name in any case).
    c.open("/computers")
    c.submit("form[action='/computers/find']", {"name": "Browser-PC-1"})
    c.wait("the found computer", lambda: c.text("#computer") == "BROWSER-PC-1")

    def state_row():
        rows = c.d.find_elements(By.XPATH, "//table[@class='kv']//tr[th='State']/td")
        return rows[0].text if rows else ""
    c.reload_until("the computer to be active after the Client ran", lambda: state_row() == "active")
    check("client.licensed" in c.text("#activity"), "the computer's recent activity: " + c.text("#activity"))
    c.shot("04-computer")

    phase("sort, filter, page")
    # Sort by name, then by last seen; filter by state; page.
    c.open("/computers")
    names = [r[0] for r in c.table_rows("#computers")]
    expected = ["ALPHA-PC", "BETA-PC", "BROWSER-PC-1", "MID-PC", "ZULU-PC"]
    check(names == expected, "computers by name: %r" % names)
    Select(c.find("select[name=sort]")).select_by_visible_text("last seen first")
    c.submit("form[action='/computers']")
    check("sort=last-seen" in c.path(), "sort not in the URL: " + c.path())
    names = [r[0] for r in c.table_rows("#computers")]
    check(names and names[0] == "BROWSER-PC-1" and sorted(names) == expected, "last seen first: %r" % names)
    Select(c.find("select[name=state]")).select_by_visible_text("active")
    c.submit("form[action='/computers']")
    rows = c.table_rows("#computers")
    check([r[0] for r in rows] == ["BROWSER-PC-1"] and rows[0][1] == "active", "active computers: %r" % rows)
    check(rows[0][5] == "1.0.0", "the Client's version in the table: %r" % rows)
    Select(c.find("select[name=state]")).select_by_visible_text("never seen")
    c.submit("form[action='/computers']")
    names = [r[0] for r in c.table_rows("#computers")]
    check(sorted(names) == ["ALPHA-PC", "BETA-PC", "MID-PC", "ZULU-PC"], "never seen: %r" % names)
    c.open("/computers?sort=name&limit=2")
    seen = [r[0] for r in c.table_rows("#computers")]
    while c.all("a#next"):
        c.mark_page()
        c.find("a#next").click()
        c.wait("the next page", c._replaced)
        seen += [r[0] for r in c.table_rows("#computers")]
        check(len(seen) <= len(expected) + 1, "paging does not end: %r" % seen)
    check(seen == expected, "all pages of two: %r" % seen)
    c.open("/computers")
    c.shot("03-computers")

    phase("activity")
    # ---- activity: the log so far, then live events over SSE
    c.open("/activity")
    rows = c.table_rows("#activity")
    check(["license.reserved", "BROWSER-PC-1"] in [r[1:3] for r in rows], "reservation not in the log: %r" % rows)
    check(["serial.unlocked", ""] in [r[1:3] for r in rows], "unlock not in the log: %r" % rows)
    c.wait("the event stream to connect (app.js sets #live)", lambda: c.text("#live") == "live")
    c.d.execute_script("window.__stillTheSamePage = true;")
    shown = len(rows)
    server.ctl("reserve", "live-pc-1")
    c.wait("LIVE-PC-1's reservation to appear live",
           lambda: ["license.reserved", "LIVE-PC-1"] in [r[1:3] for r in c.table_rows("#activity")])
    # Its Client, installed meanwhile, gets licensed: another live event.
    live_setup = os.path.join(tmp, "live-pc-1.json")
    server.ctl("setup-info", "live-pc-1", "--out", live_setup)
    with open(client_log, "a") as log:
        rc = subprocess.call([server.bin("primary-client"), "--setup", live_setup,
                              "--client-version", "1.0.1", "--duration", "2", "--time-scale", "0.01"],
                             stdout=log, stderr=subprocess.STDOUT, timeout=120)
    check(rc == 0, "LIVE-PC-1's Client exited %d:\n%s" % (rc, read_text(client_log)))
    c.wait("LIVE-PC-1's licensing to appear live",
           lambda: ["client.licensed", "LIVE-PC-1"] in [r[1:3] for r in c.table_rows("#activity")[shown:]])
    check(c.d.execute_script("return window.__stillTheSamePage === true;"), "the Activity page reloaded")
    ids = [r[-1] for r in c.table_rows("#activity")]
    check(len(ids) == len(set(ids)), "an event shown twice: %r" % ids)
    c.shot("05-activity")
    # Filter by type.
    c.find("input[type=checkbox][value='serial.unlocked']").click()
    c.submit("section.card form[action='/activity']")
    check("type=serial.unlocked" in c.path(), "filter not in the URL: " + c.path())
    types = set(r[1] for r in c.table_rows("#activity"))
    check(types == {"serial.unlocked"}, "filtered by serial.unlocked: %r" % types)

    phase("updates")
    # ---- updates: sync the feed, approve with a rollout, hold, import a bundle
    def release_rows():
        return [r for r in c.table_rows("#releases") if len(r) >= 6]

    def release(version):
        for r in release_rows():
            if r[0] == "client" and r[1] == version:
                return r
        return None

    c.open("/updates")
    c.find("#releases")
    check(not release_rows(), "releases before any sync: %r" % c.table_rows("#releases"))
    c.submit("form[action='/updates/sync']")
    check(not c.error(), "sync refused: " + c.error())
    check("started" in c.flash(), "the flash after Sync now: %r" % c.flash())
    c.reload_until("client 1.0.0 from the feed", lambda: release("1.0.0") is not None)
    c.reload_until("the sync's outcome under Vendor feed", lambda: "): ok, " in c.text("#last-sync"))
    check(release("1.0.0")[4] == "held", "a new release is held: %r" % release("1.0.0"))

    def release_form(version, action):
        row = c.d.find_element(By.XPATH, "//table[@id='releases']//tr[td[1]='client' and td[2]='%s']" % version)
        return row.find_element(By.CSS_SELECTOR, "form[action='/updates/%s']" % action)

    def click(form, what, expected_flash):
        c.mark_page()
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        c.wait(what, lambda: c._replaced() and expected_flash in c.flash())

    rollout = release_form("1.0.0", "approve").find_element(By.NAME, "rollout")
    check(rollout.get_attribute("value") == "100", "Approve offers %r%% for a held release" % rollout.get_attribute("value"))
    rollout.clear()
    rollout.send_keys("30")
    click(release_form("1.0.0", "approve"), "the approval", "Approved client 1.0.0.")
    check(release("1.0.0")[4:6] == ["approved", "30%"], "approved 30%%: %r" % release("1.0.0"))
    check(release_form("1.0.0", "approve").find_element(By.NAME, "rollout").get_attribute("value") == "30",
          "Approve does not offer the rollout in force")
    click(release_form("1.0.0", "hold"), "the hold", "Held client 1.0.0.")
    check(release("1.0.0")[4] == "held", "held: %r" % release("1.0.0"))
    c.find("input[type=file][name=bundle]").send_keys(server.releases["bundle"])
    c.submit("form[action='/updates/import']")
    check(not c.error(), "import refused: " + c.error())
    # The console answers once the updater's import job is done.
    check(re.search(r"Imported the bundle \(\d+ bytes\): 1 added, 0 failed\.", c.flash()), "import flash: " + c.flash())
    check(release("1.1.0") and release("1.1.0")[4] == "held", "client 1.1.0 from the bundle: %r" % release_rows())
    # Approve as offered: every client.
    click(release_form("1.1.0", "approve"), "the approval", "Approved client 1.1.0.")
    check(release("1.1.0")[4:6] == ["approved", "100%"], "approved as offered: %r" % release("1.1.0"))
    c.shot("06-updates")

    phase("firewall")
    # ---- firewall
    c.open("/firewall")
    front_port = server.front().rsplit(":", 1)[1]
    c.wait("the ports to open", lambda: front_port + "/tcp" in c.text("#ports"))
    check(any(front_port in pre.text for pre in c.all("main pre")), "no rule names port " + front_port)
    c.shot("07-firewall")

    phase("logout")
    # ---- logout: back to the login page, and the session is gone
    c.submit("header form[action='/logout']")
    c.wait("the login page after logout", lambda: c.path().startswith("/login") and c.all("input[name=password]"))
    check(not c.d.get_cookie("ps_session"), "the session cookie outlived the logout")
    c.open("/computers")
    c.wait("the login page for a page after logout", lambda: c.path().startswith("/login"))
    c.drain_log()

    problems = console_problems(c.log)
    check(not problems, "the browser's console log has errors:\n  " + "\n  ".join(problems))


def main():
    if len(sys.argv) not in (2, 3):
        print("usage: browser_test.py BIN_DIR [SCREENSHOT_DIR]", file=sys.stderr)
        return 2
    # A SIGTERM (ctest's timeout, a CI abort) still runs the cleanup below.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit("FAIL: stopped by SIGTERM"))
    bin_dir = os.path.abspath(sys.argv[1])
    shots = os.path.abspath(os.environ.get("PRIMARY_SCREENSHOTS") or (sys.argv[2] if len(sys.argv) == 3 else "screenshots"))
    os.makedirs(shots, exist_ok=True)
    if os.path.exists(os.path.join(shots, "failure.png")):
        os.unlink(os.path.join(shots, "failure.png"))
    tmp = tempfile.mkdtemp(prefix="pt-browser-")
    os.makedirs(os.path.join(tmp, "downloads"))
    server = Server(bin_dir, tmp)
    driver = None
    started = time.monotonic()
    try:
        run([server.bin("primary-vendor"), "keygen", "--out", os.path.join(tmp, "vendor")])
        server.releases = make_releases(bin_dir, tmp, os.path.join(tmp, "vendor", "vendor.key"))
        run([server.bin("primaryctl"), "web-password", "--data-dir", server.data], stdin=PASSWORD + "\n")
        phase("start the browser")
        driver = start_browser(tmp)
        phase("start primary-server")
        server.start(os.path.join(tmp, "vendor", "vendor.pub"), "file://" + server.releases["feed"])
        console = Console(driver, server.url(), shots)
        try:
            scenario(server, console, tmp)
        except Exception:
            try:
                console.shot("failure")
            except Exception:  # noqa: BLE001 - the first failure is what matters
                pass
            raise
        clean = server.stop()
        check(clean, "primary-server did not stop cleanly:\n" + read_text(server.log)[-3000:])
    except Failure as e:
        print("FAIL: %s" % e, file=sys.stderr)
        print("--- primary-server log (last 4000 bytes) ---\n%s" % read_text(server.log)[-4000:], file=sys.stderr)
        return 1
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        print("--- primary-server log (last 4000 bytes) ---\n%s" % read_text(server.log)[-4000:], file=sys.stderr)
        return 1
    finally:
        if driver is not None:
            driver.quit()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("browser test OK in %.0f s; screenshots in %s" % (time.monotonic() - started, shots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
