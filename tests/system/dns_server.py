"""A DNS server for the tests, on 127.0.0.1 (UDP), answering from a table the test
changes while it runs: `set(name, type, ttl, values)` (values in zone-file text, such as
"127.0.0.2" or "10 1 8000 a.srv.test."), `fail(name, rcode)` (SERVFAIL, REFUSED...) and
`clear(name)`. A name with no records of the asked type is answered NOERROR with no
data; an unknown name NXDOMAIN. Every question is remembered in `queries` as
(name, type). Messages are read and written with dnspython, never by hand."""

import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class DnsServer:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.records = {}  # (name, type) -> (ttl, [values])
        self.failing = {}  # name -> rcode
        self.queries = []
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def set(self, name, rtype, ttl, values):
        with self.lock:
            self.records[(name.lower(), rtype)] = (ttl, list(values))
            self.failing.pop(name.lower(), None)

    def fail(self, name, rcode=dns.rcode.SERVFAIL):
        with self.lock:
            self.failing[name.lower()] = rcode

    def heal(self, name):
        with self.lock:
            self.failing.pop(name.lower(), None)

    def clear(self, name):
        with self.lock:
            for k in [k for k in self.records if k[0] == name.lower()]:
                del self.records[k]

    def asked(self, name, rtype=None):
        """How many questions for name (of rtype, if given) came in."""
        with self.lock:
            return sum(1 for n, t in self.queries
                       if n == name.lower() and (rtype is None or t == rtype))

    def _answer(self, q):
        resp = dns.message.make_response(q)
        resp.flags |= dns.flags.AA
        question = q.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rtype = dns.rdatatype.to_text(question.rdtype)
        with self.lock:
            self.queries.append((name, rtype))
            if name in self.failing:
                resp.set_rcode(self.failing[name])
                return resp
            rec = self.records.get((name, rtype))
            known = any(k[0] == name for k in self.records)
        if rec is not None:
            ttl, values = rec
            resp.answer.append(dns.rrset.from_text_list(question.name, ttl, "IN", rtype,
                                                        values))
        elif not known:
            resp.set_rcode(dns.rcode.NXDOMAIN)
        return resp

    def _serve(self):
        while not self.stopped:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                q = dns.message.from_wire(data)
            except Exception:  # noqa: BLE001 - a test server drops what it cannot read
                continue
            try:
                self.sock.sendto(self._answer(q).to_wire(), peer)
            except OSError:
                return

    def close(self):
        self.stopped = True
        self.sock.close()
