"""The server as an attacker on the same network meets it: foreign origins (CORS), DNS rebinding, huge bodies
and password guessing, on Gradio's routes and the API's alike, through the server webui.py builds (`serve`)."""
import base64
import http.client
import io
import json
import time

import pytest
from PIL import Image

from tests.browser import RunningApp
from ui.server import LOCAL_NAMES, LoginThrottle, ServerPolicy, host_name, served_hosts

LAN_HOST = "192.168.1.23"          # what --listen serves: the machine's own network address
FRIEND_SITE = "http://localhost:3000"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("security")
    policy = ServerPolicy(allowed_hosts=LOCAL_NAMES | {LAN_HOST}, cors_origins=(FRIEND_SITE,),
                          max_body_bytes=2 * 2 ** 20)
    running = RunningApp(root / "outputs", root / "settings.json", api=True, policy=policy)
    yield running
    running.close()


def send(app, method, path, host=None, body=None, **headers):
    """One raw request to the app's socket, with whatever Host and headers an attacker's browser would send."""
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=60)
    data = json.dumps(body).encode() if body is not None else None
    all_headers = {"Host": host or f"127.0.0.1:{app.port}", **{k.replace("_", "-"): v for k, v in headers.items()}}
    if data is not None:
        all_headers.setdefault("Content-Type", "application/json")
    connection.request(method, path, body=data, headers=all_headers)
    response = connection.getresponse()
    content = response.read()
    connection.close()
    return response.status, dict(response.getheaders()), content


GRADIO_AND_API = [("GET", "/config", None), ("GET", "/gradio_api/info", None),
                  ("POST", "/gradio_api/queue/join", {"data": [], "fn_index": 0, "session_hash": "x"}),
                  ("GET", "/sdapi/v1/samplers", None), ("GET", "/sdapi/v1/options", None),
                  ("POST", "/sdapi/v1/txt2img", {"prompt": "x", "steps": 1}),
                  ("POST", "/controlnet/detect", {"controlnet_module": "canny"})]


@pytest.mark.parametrize("method, path, body", GRADIO_AND_API)
def test_a_foreign_page_can_neither_read_nor_write_on_a_lan_host(app, method, path, body):
    host = f"{LAN_HOST}:{app.port}"
    status, headers, content = send(app, method, path, host, body, Origin="http://evil.example")
    assert status == 403 and "evil.example" in json.loads(content)["detail"]
    assert not any(k.lower().startswith("access-control-") for k in headers), headers
    status, headers, _ = send(app, "OPTIONS", path, host, Origin="http://evil.example",
                              Access_Control_Request_Method=method, Access_Control_Request_Headers="content-type")
    assert status == 403
    assert not any(k.lower().startswith("access-control-") for k in headers), headers


def test_the_page_itself_and_allowed_sites_still_work(app):
    host = f"{LAN_HOST}:{app.port}"
    status, headers, _ = send(app, "GET", "/sdapi/v1/samplers", host, Origin=f"http://{host}")   # same origin
    assert status == 200
    status, _, _ = send(app, "GET", "/config", host)                    # a plain page load sends no Origin
    assert status == 200
    status, headers, _ = send(app, "OPTIONS", "/sdapi/v1/txt2img", host, Origin=FRIEND_SITE,
                              Access_Control_Request_Method="POST")
    assert status == 200 and headers.get("access-control-allow-origin") == FRIEND_SITE
    status, headers, _ = send(app, "GET", "/sdapi/v1/samplers", host, Origin=FRIEND_SITE)
    assert status == 200 and headers.get("access-control-allow-origin") == FRIEND_SITE


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}",
                                  "192.168.1.99:{port}", ""])
def test_dns_rebinding_a_host_not_served_is_refused(app, host):
    status, _, content = send(app, "GET", "/sdapi/v1/samplers", host.format(port=app.port) or " ")
    assert status == 400 and "--allowed-hosts" in json.loads(content)["detail"]


@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}", "LOCALHOST:{port}",
                                  f"{LAN_HOST}:{{port}}"])
def test_the_names_it_serves_are_answered(app, host):
    assert send(app, "GET", "/sdapi/v1/samplers", host.format(port=app.port))[0] == 200


def picture_of(n_bytes: int) -> str:
    noise = Image.frombytes("RGB", (512, n_bytes // 1536), bytes(range(256)) * (n_bytes // 256 + 1))
    buffer = io.BytesIO()
    noise.save(buffer, format="BMP")             # uncompressed: the file is as large as asked
    return base64.b64encode(buffer.getvalue()).decode()


def test_bodies_over_the_limit_are_refused_before_parsing(app):
    status, _, content = send(app, "POST", "/sdapi/v1/png-info", body={"image": picture_of(3 * 2 ** 20)})
    assert status == 413 and "--max-body-size" in json.loads(content)["detail"]
    status, _, _ = send(app, "POST", "/sdapi/v1/png-info", body={"image": picture_of(2 ** 20)})
    assert status == 200
    # a client may claim a huge length and send nothing: refused from the header alone
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
    connection.putrequest("POST", "/gradio_api/upload")
    connection.putheader("Content-Length", str(10 ** 12))
    connection.endheaders()
    assert connection.getresponse().status == 413
    connection.close()


def test_chunked_bodies_are_counted_as_they_arrive(app):
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
    chunk = b"x" * 2 ** 16
    connection.request("POST", "/sdapi/v1/png-info", body=(chunk for _ in range(40)),      # 2.5 MB, no length
                       headers={"Content-Type": "application/json"}, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413 and b"BodyTooLarge" in response.read()
    connection.close()
    assert send(app, "GET", "/sdapi/v1/samplers")[0] == 200


def test_listen_serves_this_machines_names_and_the_allowed_ones():
    assert served_hosts(False) == LOCAL_NAMES
    listening = served_hosts(True, ["studio.lan", "Box.Local:7860"])
    assert LOCAL_NAMES < listening and {"studio.lan", "box.local", "0.0.0.0"} <= listening
    from ui.server import lan_address
    assert host_name(lan_address()) in listening
    assert "*" in served_hosts(False, ["*"])


def test_share_without_auth_warns_that_the_api_travels_through_the_tunnel():
    from webui import exposure_warnings, parse_args
    warnings = exposure_warnings(parse_args(["--share", "--api"]), users=[])
    assert len(warnings) == 1 and "--share without --auth" in warnings[0] and "API" in warnings[0]
    assert len(exposure_warnings(parse_args(["--share", "--listen"]), users=[])) == 2
    assert exposure_warnings(parse_args(["--share", "--api"]), users=[("a", "b")]) == []


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    root = tmp_path_factory.mktemp("logins")
    running = RunningApp(root / "outputs", root / "settings.json", api_users=[("artist", "right")],
                         auth=[("artist", "right")], policy=ServerPolicy(max_login_failures=5, lockout_seconds=3))
    yield running
    running.close()


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def page_login(app, password):
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
    connection.request("POST", "/login", body=f"username=artist&password={password}",
                       headers={"Content-Type": "application/x-www-form-urlencoded", "Host": f"127.0.0.1:{app.port}"})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, dict(response.getheaders())


def api_login(app, password):
    status, headers, _ = send(app, "GET", "/sdapi/v1/samplers", Authorization=basic("artist", password))
    return status, headers


def test_repeated_failed_logins_lock_the_client_out_of_both_doors(locked):
    assert page_login(locked, "right")[0] == 200 and api_login(locked, "right")[0] == 200
    for guess in range(5):                               # guessing on the page's login form ...
        assert page_login(locked, f"guess{guess}")[0] == 400
    status, headers = api_login(locked, "right")         # ... locks the API too, even with the right password
    assert status == 429 and 1 <= int(headers["retry-after"]) <= 4
    assert page_login(locked, "right")[0] == 429
    time.sleep(3.2)                                      # the lock-out ends
    assert api_login(locked, "right")[0] == 200
    for guess in range(5):                               # guessing through the API ...
        assert api_login(locked, f"guess{guess}")[0] == 401
    assert page_login(locked, "right")[0] == 429         # ... locks the page's login
    status, _, content = send(locked, "GET", "/sdapi/v1/samplers", Authorization=basic("artist", "right"))
    assert status == 429 and "Too many failed logins" in json.loads(content)["detail"]


def test_a_success_resets_the_count_and_the_lock_ends():
    clock = [0.0]
    throttle = LoginThrottle(limit=3, window=60, clock=lambda: clock[0])
    for _ in range(2):
        throttle.failed("10.0.0.5")
    throttle.succeeded("10.0.0.5")
    throttle.failed("10.0.0.5")
    assert throttle.wait("10.0.0.5") == 0
    throttle.failed("10.0.0.5")
    throttle.failed("10.0.0.5")
    assert throttle.wait("10.0.0.5") == 60 and throttle.wait("10.0.0.6") == 0
    clock[0] = 61
    assert throttle.wait("10.0.0.5") == 0
