"""Wapio's Python SDK, unchanged, against Wharf's emulator: the contacts and groups calls
(and status, user, on-whatsapp), each checked for what it answers. Setup (sessions, the
emulated phone's address book) goes through Wharf's own routes. Prints one line per call and
`wapio-sdk: N passed, N failed`."""

import json
import os
import sys
import urllib.request

import wapio

BASE = os.environ["WAPIO_BASE_URL"]
PAT = os.environ["WAPIO_PAT"]


def wharf(method, path, body=None, token=PAT):
    """A call to Wharf outside the SDK (setup)."""
    req = urllib.request.Request(
        BASE + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(req) as res:
        text = res.read()
        return json.loads(text) if text else None


def connected(phone):
    created = wharf("POST", "/v1/whatsapp-sessions", {"label": f"sdk {phone}"})
    sid = created["session"]["session_id"]
    wharf("POST", f"/v1/whatsapp-sessions/{sid}/connect")
    wharf("POST", f"/emulator/sessions/{sid}/scan", {"phone_number": phone})
    return sid, created["session_api_key"]["raw"]


def main():
    me, key = connected("+15550100001")
    other, _ = connected("+15550100002")
    wharf("POST", f"/emulator/sessions/{me}/contacts",
          {"phone": "+15550102030", "name": "Amina", "picture_url": "https://example.com/a.jpg"})
    wharf("POST", f"/emulator/sessions/{me}/contacts", {"phone": "+15550109999", "on_whatsapp": False})

    client = wapio.Wapio(api_key=key, base_url=BASE)
    passed, failed = 0, 0

    def check(name, call, ok):
        nonlocal passed, failed
        try:
            data = call().data
            good = ok(data)
        except Exception as e:  # noqa: BLE001 - any failure of the call is reported
            data, good = f"{type(e).__name__}: {e}", False
        print(f"{name}: {'ok' if good else 'FAIL ' + json.dumps(data, default=str)[:300]}")
        if good:
            passed += 1
        else:
            failed += 1
        return data

    check("get_session_status", client.get_session_status,
          lambda d: d["session_id"] == me and d["connected"] is True)
    check("get_user", client.get_user, lambda d: d["phone_number"] == "+15550100001")
    check("on_whatsapp", lambda: client.on_whatsapp("+15550102030"),
          lambda d: d["exists"] is True and d["jid"] == "15550102030@s.whatsapp.net")
    check("on_whatsapp (absent)", lambda: client.on_whatsapp("+15550109999"),
          lambda d: d["exists"] is False)
    check("get_contacts", client.get_contacts,
          lambda d: [c["jid"] for c in d["data"]] == ["15550102030@s.whatsapp.net"])
    check("get_contact", lambda: client.get_contact("+15550102030"), lambda d: d["name"] == "Amina")
    check("get_contact_profile_picture",
          lambda: client.get_contact_profile_picture("15550102030@s.whatsapp.net"),
          lambda d: d["url"] == "https://example.com/a.jpg")
    check("block_contact", lambda: client.block_contact("+15550102030"), lambda d: d["blocked"] is True)
    check("unblock_contact", lambda: client.unblock_contact("+15550102030"), lambda d: d["blocked"] is False)

    created = check("create_group",
                    lambda: client.create_group(subject="SDK group", participants=["+15550102030", "+15550109999"]),
                    lambda d: [r["outcome"] for r in d["results"]] == ["added", "not_on_whatsapp"])
    group = created["group"]["jid"] if isinstance(created, dict) else "0@g.us"
    check("get_groups", client.get_groups, lambda d: [g["jid"] for g in d["data"]] == [group])
    check("get_group_metadata", lambda: client.get_group_metadata(group),
          lambda d: d["subject"] == "SDK group" and d["size"] == 2)
    check("get_group_participants", lambda: client.get_group_participants(group),
          lambda d: {p["role"] for p in d["data"]} == {"superadmin", "member"})
    check("update_group_settings",
          lambda: client.update_group_settings(group, {"subject": "Renamed", "announce": True}),
          lambda d: d["subject"] == "Renamed" and d["settings"]["announce"] is True)
    check("add_group_participants", lambda: client.add_group_participants(group, ["+15550100002", "+15550102030"]),
          lambda d: [r["outcome"] for r in d["results"]] == ["added", "already_in_group"])
    check("remove_group_participants", lambda: client.remove_group_participants(group, ["+15550100002"]),
          lambda d: [r["outcome"] for r in d["results"]] == ["removed"])
    # The SDK raises the API's error with its reason code.
    try:
        client.update_group_settings(group, {"colour": "blue"})
        print("update_group_settings (unknown key): FAIL: no error")
        failed += 1
    except wapio.WapioAPIError as e:
        good = e.status_code == 422 and e.reason_code == "validation_error" and "colour" in e.api_message
        print(f"update_group_settings (unknown key): {'ok' if good else 'FAIL ' + str(e)}")
        passed, failed = passed + good, failed + (not good)
    print(f"wapio-sdk: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
