// tests/tls/flight.js - a TLS client that sends its handshake's last flight and its first
// requests in one TCP write, the case OpenSSL read-ahead has to get right: the server reads
// the Finished message and the application records after it in one go.
//
// usage: node flight.js PORT CA-FILE VERSION BODY-BYTES
//   VERSION: TLSv1.3, or TLSv1.2 (a first connection gets a session, the second resumes it
//   and is the one measured). Sends three pipelined GETs as separate TLS records and, when
//   BODY-BYTES > 0, a POST /echo of that many bytes before the last GET (the origin's echo
//   reports the length it got). Prints
//   "RESPONSES n RESUMED yes|no BODY ok|bad|none" and exits 0, or "TIMEOUT ..." and exits 1.
'use strict';
const net = require('net');
const tls = require('tls');
const fs = require('fs');
const { Duplex } = require('stream');

const [port, caFile, version, bodyArg] = process.argv.slice(2);
const ca = fs.readFileSync(caFile);
const bodyLen = parseInt(bodyArg || '0', 10);

// Holds what TLS writes for 30 ms and hands it to the socket as one write.
class Coalesce extends Duplex {
	constructor(sock) {
		super();
		this.sock = sock;
		this.pend = [];
		this.timer = null;
		sock.on('data', (d) => { if (!this.push(d)) sock.pause(); });
		sock.on('end', () => this.push(null));
		sock.on('error', (e) => this.destroy(e));
	}
	_read() { this.sock.resume(); }
	flush() {
		this.timer = null;
		if (this.pend.length) this.sock.write(Buffer.concat(this.pend));
		this.pend = [];
	}
	_write(chunk, enc, cb) {
		this.pend.push(chunk);
		if (!this.timer) this.timer = setTimeout(() => this.flush(), 30);
		cb();
	}
	_final(cb) {
		if (this.timer) clearTimeout(this.timer);
		this.flush();
		this.sock.end();
		cb();
	}
}

function connect(session, onSecure) {
	const sock = net.connect(+port, '127.0.0.1');
	const c = tls.connect({ socket: new Coalesce(sock), servername: 'localhost', ca,
		minVersion: version, maxVersion: version, session });
	c.on('secureConnect', () => onSecure(c));
	return c;
}

function measured(session) {
	let got = '';
	const timer = setTimeout(() => {
		console.log('TIMEOUT RESPONSES ' + (got.match(/HTTP\/1\.1 200/g) || []).length);
		process.exit(1);
	}, 5000);
	const c = connect(session, (s) => {
		const req = (n, close) => `GET /?n=${n} HTTP/1.1\r\nHost: localhost\r\n` +
			(close ? 'Connection: close\r\n' : '') + '\r\n';
		s.write(req(1));
		s.write(req(2));
		if (bodyLen > 0) {
			s.write(`POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${bodyLen}\r\n\r\n`);
			s.write(Buffer.alloc(bodyLen, 'x'));
		}
		s.write(req(3, true));
	});
	c.setEncoding('latin1');
	c.on('data', (d) => { got += d; });
	c.on('error', () => {});
	c.on('end', () => {
		clearTimeout(timer);
		const n = (got.match(/HTTP\/1\.1 200/g) || []).length;
		let body = 'none';
		if (bodyLen > 0)
			body = got.includes(`body-length: ${bodyLen}\n`) ? 'ok' : 'bad';
		console.log(`RESPONSES ${n} RESUMED ${c.isSessionReused() ? 'yes' : 'no'} BODY ${body}`);
		process.exit(0);
	});
}

if (version === 'TLSv1.2') {
	// a first connection for the session, then the measured one resumes it
	let session = null;
	const first = connect(undefined, (s) => s.end('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'));
	first.on('session', (s) => { session = s; });
	first.on('data', () => {});
	first.on('error', () => {});
	first.on('close', () => measured(session));
} else {
	measured(undefined);
}
