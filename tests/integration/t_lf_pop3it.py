from test_auth_service import *
def test_lf(postern, scripted, dovecot):
    auth = scripted("HTTP/1.0 200 OK\nAuth-Status: OK\nAuth-Server: 127.0.0.1\nAuth-Port: %d\n\n" % dovecot.pop3_port)
    p = postern([{"protocol": "pop3"}], auth=auth.url)
    with Pop3Raw(p.port) as c:
        r = c.login("bob", USERS["bob"])
    print(r, p.log_text()[-600:])
    assert 0
