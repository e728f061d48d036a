"""Zernio's Python SDK, unchanged, against Wharf: every template call and the business profile, on an emulator
session (the WhatsApp account), the phone numbers of the operator's pool, and its errors as the SDK raises them."""

import json
import os
import sys
import urllib.request

from late import Zernio
from late.client.exceptions import LateAPIError, LateNotFoundError

base = os.environ["WHARF_URL"]
pat = os.environ["WHARF_PAT"]


def wharf(method, path, body=None):
    """A call to Wharf's own API (to make the session the SDK works on)."""
    req = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {pat}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read() or b"{}")


session = wharf("POST", "/v1/whatsapp-sessions", {})["session"]["session_id"]

# Zernio's SDKs use a base URL ending in /api.
client = Zernio(api_key=pat, base_url=base + "/api", max_retries=1)
wa = client.whatsapp


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


created = wa.create_whats_app_template(
    account_id=session,
    name="order_confirmation",
    category="UTILITY",
    language="en_US",
    components=[
        {"type": "BODY", "text": "Your order {{1}} has been confirmed. Expected delivery: {{2}}",
         "example": {"body_text": [["ORD-12345", "March 31"]]}},
        {"type": "FOOTER", "text": "Thank you for your purchase"},
        {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Track Order"}]},
    ],
)
check(created["success"] is True, "create answers success")
check(created["template"]["status"] == "APPROVED", "an emulator template is approved at once")
check(created["template"]["name"] == "order_confirmation", "create answers the name")

listed = wa.get_whats_app_templates(account_id=session)
check([t["name"] for t in listed["templates"]] == ["order_confirmation"], "list shows it")
check(wa.get_whats_app_templates(account_id=session, status="REJECTED")["templates"] == [],
      "list filters by status")

one = wa.get_whats_app_template("order_confirmation", account_id=session)
check(one["template"]["components"][0]["type"] == "BODY", "get answers the components")

updated = wa.update_whats_app_template(
    "order_confirmation",
    account_id=session,
    components=[{"type": "BODY", "text": "Updated: your order {{1}} is confirmed. Delivery by {{2}}"}],
)
check(updated["success"] is True and updated["template"]["status"] == "APPROVED", "update")
check(wa.get_whats_app_template("order_confirmation", account_id=session)["template"]
      ["components"][0]["text"].startswith("Updated:"), "the update is kept")

try:
    wa.create_whats_app_template(account_id=session, name="Bad-Name", category="UTILITY",
                                 language="en_US", components=[{"type": "BODY", "text": "Hi"}])
    check(False, "an invalid name is refused")
except LateAPIError as e:
    check(getattr(e, "status_code", None) == 400 and "name" in str(e), f"an invalid name is refused ({e})")

try:
    wa.get_whats_app_templates(account_id="sess_00000000000000000000000000")
    check(False, "an unknown account is refused")
except LateNotFoundError as e:
    check("WhatsApp account not found" in str(e), f"an unknown account is 404 ({e})")

deleted = wa.delete_whats_app_template("order_confirmation", account_id=session)
check(deleted == {"success": True,
                  "message": 'Template "order_confirmation" deleted successfully'}, "delete")
try:
    wa.get_whats_app_template("order_confirmation", account_id=session)
    check(False, "a deleted template is gone")
except LateNotFoundError:
    check(True, "a deleted template is gone")

# The business profile, through the SDK's own methods (stored on the emulator).
updated = wa.update_whats_app_business_profile(
    session, about="Open 9-5", description="Bikes and repairs", email="shop@example.com",
    websites=["https://example.com"], vertical="RETAIL")
check(updated.get("success") is True, f"profile update answers success ({updated})")
profile = wa.get_whats_app_business_profile(session)["businessProfile"]
check((profile["about"], profile["vertical"], profile["websites"])
      == ("Open 9-5", "RETAIL", ["https://example.com"]), f"the profile reads back ({profile})")
try:
    wa.update_whats_app_business_profile(session, about="x" * 140)
    check(False, "an about over 139 characters is refused")
except LateAPIError as e:
    check(getattr(e, "status_code", None) == 400 and "about" in str(e),
          f"an about over 139 characters is refused naming it ({e})")

# Phone numbers, from the operator's pool (run.sh adds +12125550100 and +13105550101).
pn = client.whatsapp_phone_numbers
found = pn.search_available_whats_app_numbers(prefix="212")
check([n["phoneNumber"] for n in found["numbers"]] == ["+12125550100"],
      f"available searches the pool by area code ({found})")
bought = pn.purchase_whats_app_phone_number("sdk-profile")["phoneNumber"]
check((bought["phoneNumber"], bought["status"]) == ("+12125550100", "active"),
      f"purchase assigns the oldest pool number inline ({bought})")
listed = pn.get_whats_app_phone_numbers(profile_id="sdk-profile")["numbers"]
check([n["_id"] for n in listed] == [bought["id"]], f"the list shows it for its profile ({listed})")
check(pn.get_whats_app_phone_number(bought["id"])["phoneNumber"]["status"] == "active", "get a number")
released = pn.release_whats_app_phone_number(bought["id"])["phoneNumber"]
check(released["status"] == "released" and released["releasedAt"], f"release ({released})")
try:
    pn.release_whats_app_phone_number(bought["id"])
    check(False, "a second release is refused")
except LateAPIError as e:
    check(getattr(e, "status_code", None) == 400 and "already released" in str(e),
          f"a second release is refused ({e})")
try:
    pn.get_whats_app_phone_number("pn_00000000000000000000000000")
    check(False, "an unknown number is refused")
except LateNotFoundError as e:
    check("Phone number not found" in str(e), f"an unknown number is 404 ({e})")
