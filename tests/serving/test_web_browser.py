"""The web app in a real browser: Debian's headless Chromium, driven by Selenium, against the real server on
loopback with tiny checkpoints (tests/serving/conftest.py's ``server``). The "silent clip -> speech" tab gets
the bundled example clip as an upload and must end with the speech in its <audio> element and the mouth
crops beside it, on a screenshot that is not blank; the "text -> talking head" tab must play streamed audio
before its video exists, then show the video.

    apt-get install chromium chromium-driver        # the OS browser; nothing is downloaded at test time
    SAVE_APP_SCREENSHOT=1 pytest tests/serving/test_web_browser.py   # also writes docs/img/serving_app.png
"""

import io
import os
import time
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import REPO

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
EXAMPLE = REPO / "serving" / "web" / "examples" / "talking_face.mp4"
SCREENSHOT = REPO / "docs" / "img" / "serving_app.png"

pytestmark = pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                                reason="needs the OS browser: apt-get install chromium chromium-driver")
webdriver = pytest.importorskip("selenium.webdriver")
Select = pytest.importorskip("selenium.webdriver.support.select").Select
pytest.importorskip("dlib")  # the front-end's face tracker, for an uploaded clip


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)  # the OS browser: with both paths given, Selenium Manager never runs
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1000,900",
                 "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_for(driver, script: str, timeout: float = 60.0, panel: str = "panel-speech"):
    """Polls a JS expression until it is truthy; fails at once with the panel's error line if one shows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        error = driver.execute_script(f"return document.querySelector('#{panel} .error:not([hidden])')?.textContent")
        assert not error, f"the page shows an error: {error}"
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {script}")


def pixels(png: bytes) -> np.ndarray:
    """A PNG screenshot -> (H, W, 3) uint8 (PyAV, a core dependency, decodes PNG)."""
    with av.open(io.BytesIO(png)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def test_an_uploaded_clip_becomes_speech_in_the_audio_player(server, browser):
    browser.get(server.url + "/")  # a fresh browser's first page, on a loaded machine: its title may come late
    wait_for(browser, "document.title.startsWith('avspeech')", 30)
    wait_for(browser, "document.getElementById('models').textContent.includes('hicodit')", 10)
    # as a user does: the file chooser gets the bundled example (the example <select> is the other way in)
    browser.find_element("id", "speech-file").send_keys(str(EXAMPLE))
    browser.find_element("id", "speech-run").click()
    duration = wait_for(browser, "(a => a.src && a.duration > 0 && a.duration)"
                                 "(document.getElementById('speech-audio'))")
    assert 1.0 < duration < 1.6  # the example's 1.3 s of frames: speech as long as the clip
    wait_for(browser, "!document.getElementById('speech-run').disabled", 10)  # the spinner is gone, ready again
    # the mouth crops the front-end read play beside it: 96 x 96 frames from the server's /v1/files/ link
    size = wait_for(browser, "(v => v.videoWidth && [v.videoWidth, v.videoHeight, v.src])"
                             "(document.getElementById('speech-mouth-video'))", 20)
    assert size[:2] == [96, 96] and "/v1/files/" in size[2]
    browser.execute_script("document.getElementById('speech-mouth-video').pause()")  # a still screenshot

    png = browser.get_screenshot_as_png()
    image = pixels(png)
    colours = len(np.unique(image.reshape(-1, 3), axis=0))
    assert image.std() > 20 and colours > 500, f"a blank page? std {image.std():.1f}, {colours} colours"
    if os.environ.get("SAVE_APP_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(png)


def test_a_streamed_talking_head_is_heard_before_its_video_is_shown(server, browser):
    browser.get(server.url + "/")
    browser.find_element("id", "tab-talker").click()
    wait_for(browser, "[...document.getElementById('talker-voice').options].some(o => o.value === 'sine')", 10,
             panel="panel-talker")
    Select(browser.find_element("id", "talker-voice")).select_by_value("sine")  # registered at the server's start
    browser.find_element("id", "talker-face").send_keys(str(EXAMPLE))
    # watch the page as it changes: was the video still hidden when the first audio chunk was scheduled?
    browser.execute_script("""
        const status = document.getElementById('talker-status');
        window.seen = {heardBeforeVideo: null};
        new MutationObserver(() => {
            if (seen.heardBeforeVideo === null && /playing while/.test(status.textContent))
                seen.heardBeforeVideo = document.getElementById('talker-result').hidden;
        }).observe(status, {childList: true, characterData: true, subtree: true});""")
    browser.find_element("id", "talker-run").click()
    duration = wait_for(browser, "(v => !document.getElementById('talker-result').hidden && v.duration > 0 && "
                                 "v.duration)(document.getElementById('talker-video'))", panel="panel-talker")
    assert abs(duration - server.config.max_output_seconds) < 0.1  # the whole clip the server made
    assert browser.execute_script("return seen.heardBeforeVideo") is True
    progress = browser.execute_script("return (p => [p.value, p.max])(document.getElementById('talker-progress'))")
    assert progress[0] == progress[1]


def test_a_file_that_is_not_a_video_shows_the_servers_one_line_refusal(server, serve_media, browser):
    browser.get(server.url + "/")
    browser.find_element("id", "speech-file").send_keys(str(serve_media["garbage"]))
    browser.find_element("id", "speech-run").click()
    error = browser.find_element("id", "speech-error")
    deadline = time.monotonic() + 20
    while not error.is_displayed() and time.monotonic() < deadline:
        time.sleep(0.1)
    # the server's {"detail": ...} line, naming the upload, and no stale result
    assert "garbage.mp4" in error.text and "\n" not in error.text
    assert browser.execute_script("return document.getElementById('speech-result').hidden") is True
    assert browser.find_element("id", "speech-run").is_enabled()
