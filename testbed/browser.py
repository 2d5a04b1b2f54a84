"""A real browser for the tests of what people do: Debian's headless Chromium driven by Selenium.

It trusts the hubs' local CAs (and the test bed's other CAs) through an NSS database of its own, as a
person who imported the CA would: certificate errors are never ignored. Hub names resolve to the test
targets through Chromium's host resolver rules, so certificates are checked for the hub's real name.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from testbed import STATE

ARTIFACTS = STATE / "artifacts"
# What a person waits for on a page (a link, a button, words) may take as long as the page itself may take to load
# on a loaded machine: one bound for both.
PAGE_WAIT = 90


class Browser:
    def __init__(self, ca_files: list[Path] = (), hosts: dict[str, str] | None = None):
        self.home = Path(tempfile.mkdtemp(prefix="browser-", dir=_ensure(STATE)))
        nssdb = self.home / ".pki" / "nssdb"
        nssdb.mkdir(parents=True)
        subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True)
        for index, ca_file in enumerate(ca_files):
            subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", f"testbed-ca-{index}",
                            "-i", str(ca_file)], check=True)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--no-first-run", "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--disable-quic", "--window-size=1400,1000",
                         f"--user-data-dir={self.home / 'profile'}"):
            options.add_argument(argument)
        if hosts:
            rules = ", ".join(f"MAP {name} {address}" for name, address in hosts.items())
            options.add_argument(f"--host-resolver-rules={rules}, EXCLUDE localhost")
        service = Service(executable_path="/usr/bin/chromedriver", env={**os.environ, "HOME": str(self.home)})
        self.driver = webdriver.Chrome(service=service, options=options)
        self.driver.set_page_load_timeout(PAGE_WAIT)

    # What a person sees and does.

    def open(self, url: str) -> None:
        self.driver.get(url)

    @property
    def url(self) -> str:
        return self.driver.current_url

    def text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    def _until(self, condition, timeout: float, what: str):
        """What ``condition`` returns once it holds; where it does not within ``timeout``, a failure that says
        what was awaited, where the browser was and what the page said."""
        try:
            return WebDriverWait(self.driver, timeout).until(condition)
        except TimeoutException:
            raise AssertionError(f"{what} did not happen within {timeout:g}s; the browser was at {self.url}, and the "
                                 f"page said:\n{self._safe_text()[:2000]}") from None

    def wait_for(self, css: str, timeout: float = PAGE_WAIT):
        return self._until(expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, css)), timeout,
                           f"{css!r} showing")

    def wait_for_text(self, text: str, timeout: float = PAGE_WAIT, css: str = "body") -> str:
        self._until(expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, css), text), timeout,
                    f"{text!r} appearing")
        return self.text()

    def wait_for_url(self, *fragments: str, timeout: float = 120) -> None:
        """Wait until the address holds one of ``fragments``."""
        self._until(lambda driver: any(fragment in driver.current_url for fragment in fragments), timeout,
                    f"reaching {' or '.join(map(repr, fragments))}")

    def fill(self, css: str, text: str) -> None:
        field = self.wait_for(css)
        field.clear()
        field.send_keys(text)

    def click(self, css: str, timeout: float = PAGE_WAIT) -> None:
        element = self._until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, css)), timeout,
                              f"{css!r} becoming clickable")
        # As a person scrolls to a button before pressing it.
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", element)
        element.click()

    def click_link(self, href_part: str, timeout: float = PAGE_WAIT) -> None:
        self.click(f'a[href*="{href_part}"]', timeout)

    def select(self, css: str, value: str) -> None:
        Select(self.wait_for(css)).select_by_value(value)

    def press(self, *keys: str) -> None:
        self.driver.switch_to.active_element.send_keys(*keys)

    def close_tab(self) -> None:
        """Close the page's tab, as a person done with it, and go on in a new one. (Moving on in the same tab may
        leave the page alive: Chromium keeps pages in its back-forward cache for minutes.)"""
        left = self.driver.current_window_handle
        self.driver.switch_to.new_window("tab")
        kept = self.driver.current_window_handle
        self.driver.switch_to.window(left)
        self.driver.close()
        self.driver.switch_to.window(kept)

    def screenshot(self, name: str) -> Path:
        path = _ensure(ARTIFACTS) / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.home, ignore_errors=True)

    def _safe_text(self) -> str:
        try:
            return self.text()
        except WebDriverException:
            return "(no page)"


class HubPages:
    """The hub's pages as a person uses them, at ``base_url`` (https://<hub name>/)."""

    def __init__(self, browser: Browser, base_url: str):
        self.browser = browser
        self.base = base_url.rstrip("/")

    def login(self, username: str, password: str) -> None:
        self.browser.open(f"{self.base}/hub/login")
        self.browser.fill("#username_input", username)
        self.browser.fill("#password_input", password)
        self.browser.click("#login_submit")

    def logged_in(self, username: str, password: str) -> None:
        """Log in and wait until the hub sends the browser on: to the spawn form, or, where the hub offers nothing
        to choose and the server it started at once answered within the hub's first second, past it to the server
        (so fast that a poll of the address may never see /hub/spawn)."""
        self.login(username, password)
        self.browser.wait_for_url("/hub/spawn", f"/user/{username}/", timeout=60)

    def signup(self, username: str, password: str) -> str:
        self.browser.open(f"{self.base}/hub/signup")
        self.browser.fill("#username_input", username)
        self.browser.fill("#password_input", password)
        self.browser.fill("#password_confirmation_input", password)
        self.browser.click("#signup_submit")
        return self.browser.wait_for(".alert").text

    def authorize(self, username: str) -> None:
        """As an admin: approve ``username`` at /hub/authorize."""
        self.browser.open(f"{self.base}/hub/authorize")
        self.browser.click_link(f"/hub/authorize/{username}")
        self.browser.wait_for_url(f"/hub/authorize#{username}")

    def logout(self) -> None:
        self.browser.open(f"{self.base}/hub/logout")
        self.browser.wait_for_url("/hub/login")

    def start_server(self, profile: str | None = None) -> None:
        """Start one's server from the spawn form, on the image ``profile`` where given; returns once the hub
        sent the browser on to it."""
        self.browser.open(f"{self.base}/hub/spawn")
        if profile:
            self.browser.select("select[name=image]", profile)
        # With nothing to choose (no GPUs) the hub shows no form and starts the server at once.
        if self.browser.driver.find_elements(By.CSS_SELECTOR, "#spawn_form"):
            self.browser.click("#spawn_form input[type=submit], #spawn_form button[type=submit]")

        def left_the_form(driver):
            # By the path, not the whole address: a query (?next=...) may name the server's URL too; /hub/user/...
            # is a hub redirect on the way, not where it ends.
            path, prefix = urlsplit(driver.current_url).path, urlsplit(self.base).path
            if path.startswith((f"{prefix}/hub/spawn-pending/", f"{prefix}/user/")):
                return True
            return "Error:" in driver.find_element(By.TAG_NAME, "body").text

        # The page changes under the check while the browser navigates.
        WebDriverWait(self.browser.driver, 120, ignored_exceptions=(StaleElementReferenceException,)
                      ).until(left_the_form)

    def start_server_or_fail(self, profile: str | None = None) -> None:
        self.start_server(profile)
        path = urlsplit(self.browser.url).path
        if "/hub/spawn" in path and "/hub/spawn-pending/" not in path:
            raise AssertionError(f"the hub did not start the server (at {self.browser.url}):\n"
                                 f"{self.browser.text()[:2000]}")

    def stop_server(self, timeout: float = 120) -> None:
        self.browser.open(f"{self.base}/hub/home")
        self.browser.click("#stop")
        clicked = time.monotonic()
        # The home page, loaded afresh, offers "Start My Server" once the hub has really stopped it. A press that
        # came before the page's script had hooked the button does nothing; as a person would, press it again.
        deadline = clicked + timeout
        while time.monotonic() < deadline:
            time.sleep(1)
            self.browser.open(f"{self.base}/hub/home")
            if not self.browser.driver.find_elements(By.CSS_SELECTOR, "#stop"):
                return
            if time.monotonic() - clicked > 15:
                self.browser.click("#stop")
                clicked = time.monotonic()
        raise AssertionError(f"the server was not stopped within {timeout}s")


class JupyterLab:
    """JupyterLab in the browser, as a person writes and runs a notebook."""

    def __init__(self, browser: Browser):
        self.browser = browser

    def wait_until_loaded(self, timeout: float = 240) -> None:
        self.browser.wait_for_url("/lab", timeout=timeout)
        self.browser.wait_for(".jp-LauncherCard, .jp-Notebook", timeout=timeout)

    def new_notebook(self) -> None:
        self.browser.click('.jp-LauncherCard[data-category="Notebook"]')
        self.browser.wait_for(".jp-Notebook .jp-Cell .cm-content")
        self.wait_for_kernel()

    def open_notebook(self, base_url: str, user: str, path: str) -> None:
        self.browser.open(f"{base_url.rstrip('/')}/user/{user}/lab/tree/{path}")
        self.browser.wait_for(".jp-Notebook .jp-Cell .cm-content", timeout=240)

    def wait_for_kernel(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.browser.driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator")
            if status and status[0].get_attribute("data-status") == "idle":
                return
            time.sleep(0.5)
        raise AssertionError("the notebook's kernel did not become idle")

    def run_cell(self, code: str, expect: str, timeout: float = 120) -> str:
        """Type ``code`` into the last cell, run it with Shift+Enter, and return that cell's output once
        it shows ``expect``. Where the cell does not start (its prompt stays ``[ ]:``: JupyterLab drops a run
        asked for while it is still connecting to a new kernel, more often on a busy machine), run it again,
        as a person who sees nothing happen does."""
        cell = self.browser.driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")[-1]
        cell.find_element(By.CSS_SELECTOR, ".cm-content").click()
        self.browser.press(code)
        self.browser.press(Keys.SHIFT, Keys.ENTER)

        def started(driver):
            return cell.find_element(By.CSS_SELECTOR, ".jp-InputPrompt").text.strip() not in ("", "[ ]:")

        try:
            WebDriverWait(self.browser.driver, 20).until(started)
        except TimeoutException:
            cell.find_element(By.CSS_SELECTOR, ".cm-content").click()
            self.browser.press(Keys.CONTROL, Keys.ENTER)

        def output(driver):
            text = "\n".join(area.text for area in cell.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output"))
            return text if expect in text else False

        try:
            return WebDriverWait(self.browser.driver, timeout).until(output)
        except TimeoutException:
            raise AssertionError(f"the cell's output did not show {expect!r} within {timeout}s") from None

    def cell_sources(self) -> list[str]:
        return [cell.text for cell in self.browser.driver.find_elements(By.CSS_SELECTOR,
                                                                        ".jp-Notebook .jp-Cell .cm-content")]

    def save(self, name: str) -> None:
        """Save the notebook, naming it ``name`` (JupyterLab asks for a name at the first save)."""
        self.browser.press(Keys.CONTROL, "s")
        dialog = self.browser.wait_for(".jp-Dialog input", timeout=30)
        dialog.send_keys(Keys.CONTROL, "a")
        dialog.send_keys(name)
        self.browser.click(".jp-Dialog-button.jp-mod-accept")
        # A saved notebook's tab carries its new name and loses its "dirty" mark.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            tabs = self.browser.driver.find_elements(By.CSS_SELECTOR, ".lm-TabBar-tab.jp-mod-current")
            if tabs and name in tabs[0].text and "jp-mod-dirty" not in tabs[0].get_attribute("class"):
                return
            time.sleep(0.5)
        raise AssertionError(f"the notebook was not saved as {name}")

    # The GPU view (spawner/lab): its status bar item, panel and notifications.
    GPU_STATUS = ".jp-gpu-status"

    def gpu_status(self, matching: str = r".", timeout: float = 90) -> str:
        """The GPU status bar item's words, once they match the regular expression ``matching``."""
        found = self.browser._until(
            lambda driver: next((item.text for item in driver.find_elements(By.CSS_SELECTOR, self.GPU_STATUS)
                                 if re.search(matching, item.text)), False),
            timeout, f"the GPU status item saying {matching!r}")
        return found

    def gpu_status_warns(self) -> bool:
        item = self.browser.driver.find_element(By.CSS_SELECTOR, self.GPU_STATUS)
        return "jp-gpu-status-warning" in item.get_attribute("class")

    def open_gpu_panel(self):
        """The GPU panel, opened as a person does: a click on the status item."""
        self.browser.click(self.GPU_STATUS)
        return self.browser.wait_for("#jupyterhub-gpu-panel .jp-gpu-status-line")

    def notifications(self, matching: str) -> list[str]:
        """The JupyterLab notifications (toasts) showing now whose text matches ``matching``."""
        found = []
        for toast in self.browser.driver.find_elements(By.CSS_SELECTOR, ".Toastify__toast"):
            try:
                if re.search(matching, toast.text):
                    found.append(toast.text)
            except StaleElementReferenceException:  # closed meanwhile
                continue
        return found

    def notification(self, matching: str, timeout: float = 90) -> str:
        """The text of a JupyterLab notification that matches ``matching``, once it shows."""
        return self.browser._until(lambda driver: next(iter(self.notifications(matching)), False), timeout,
                                   f"a notification saying {matching!r}")


def _ensure(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory
