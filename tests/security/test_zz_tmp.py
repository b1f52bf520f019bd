from tests.security.conftest import client_for, csrf_for, rolled_back

def test_x(app, world):
    token = csrf_for(app)
    for code in ["ä" * 3000, "ä"*50, "9"*100000]:
        with rolled_back():
            c = client_for(app, world, "provider_x")
            r = c.post("/anbieter/einloesen", data={"code": code, "offer_id": world.offer_ids["x"], "adults": "1", "children": "0", "idempotency_key": "abcdefghijk", "csrf_token": token})
            print(len(code), r.status_code)
    with rolled_back():
        c = client_for(app, world, "provider_x")
        r = c.post("/anbieter/einloesen", data={"code": world.pass_token, "offer_id": "99999999999999999999999", "adults": "1", "children": "0", "idempotency_key": "abcdefghijk", "csrf_token": token})
        print("big offer", r.status_code)
        r = c.post("/anbieter/einloesen", data={"code": world.pass_token, "offer_id": world.offer_ids["x"], "adults": "99999999999999999999999", "children": "1e309", "idempotency_key": "abcdefghijk", "csrf_token": token})
        print("big adults", r.status_code)
