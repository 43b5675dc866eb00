// ws.js - WebSocket echo server and client for proxyd's integration tests (Debian's
// node-ws; NODE_PATH=/usr/share/nodejs).
//
//   node ws.js server [--tls CERT KEY]     echo server on 127.0.0.1, prints "READY port=N";
//                                          a text message "close-me" makes it close the
//                                          connection (code 4000); logs "closed CODE" lines
//   node ws.js client URL [--count N] [--size BYTES] [--ca FILE] [--close-by server|client]
//                        [--hold MS]       (waits MS after the last echo before closing)
//                                          sends N messages of BYTES random bytes, checks
//                                          every echo byte for byte, prints "OK N BYTES",
//                                          then closes (or asks the server to); exit 0 on
//                                          success, 1 otherwise. Bounded by a 60 s timer.
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');
const crypto = require('crypto');
const WebSocket = require('ws');

const args = process.argv.slice(2);
const opt = (name, def) => {
	const i = args.indexOf(name);
	return i >= 0 ? args[i + 1] : def;
};

if (args[0] === 'server') {
	const tls = args.indexOf('--tls');
	const srv = tls >= 0
		? https.createServer({cert: fs.readFileSync(args[tls + 1]), key: fs.readFileSync(args[tls + 2])})
		: http.createServer((req, res) => { res.end('not a websocket request\n'); });
	const wss = new WebSocket.WebSocketServer({server: srv, maxPayload: 64 * 1024 * 1024});
	wss.on('connection', (ws, req) => {
		ws.on('message', (data, isBinary) => {
			if (!isBinary && data.toString() === 'close-me') {
				ws.close(4000, 'asked');
				return;
			}
			ws.send(data, {binary: isBinary});
		});
		ws.on('close', (code) => console.error('closed ' + code));
	});
	srv.listen(0, '127.0.0.1', () => {
		console.log('READY port=' + srv.address().port);
	});
	process.on('SIGTERM', () => process.exit(0));
} else if (args[0] === 'client') {
	const url = args[1];
	const count = parseInt(opt('--count', '10'), 10);
	const size = parseInt(opt('--size', '1024'), 10);
	const ca = opt('--ca', null);
	const closeBy = opt('--close-by', 'client');
	const hold = parseInt(opt('--hold', '0'), 10);
	const ws = new WebSocket(url, ca ? {ca: fs.readFileSync(ca)} : {});
	const timer = setTimeout(() => { console.log('TIMEOUT'); process.exit(1); }, 60000);
	let sent = [], got = 0, bytes = 0;
	ws.on('open', () => {
		for (let i = 0; i < count; i++) {
			const b = crypto.randomBytes(size);
			sent.push(b);
			ws.send(b, {binary: true});
		}
	});
	ws.on('message', (data) => {
		if (!Buffer.from(data).equals(sent[got])) {
			console.log('MISMATCH at message ' + got);
			process.exit(1);
		}
		bytes += data.length;
		if (++got === count) {
			console.log('OK ' + got + ' ' + bytes);
			setTimeout(() => {
				if (closeBy === 'server')
					ws.send('close-me');
				else
					ws.close(1000, 'done');
			}, hold);
		}
	});
	ws.on('close', (code) => {
		clearTimeout(timer);
		console.log('CLOSED ' + code);
		process.exit(got === count ? 0 : 1);
	});
	ws.on('unexpected-response', (req, res) => {
		console.log('HTTP ' + res.statusCode);
		process.exit(1);
	});
	ws.on('error', (e) => { console.log('ERROR ' + e.message); process.exit(1); });
} else {
	console.error('usage: node ws.js server [--tls CERT KEY] | client URL [options]');
	process.exit(2);
}
