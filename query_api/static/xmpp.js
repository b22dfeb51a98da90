// A small XMPP client over WebSocket (RFC 7395) for the room widget, the connection's half: sign in (SASL
// SCRAM-SHA-256 or SCRAM-SHA-1 through WebCrypto, PLAIN only where the server offers nothing better), bind a
// resource, send and receive stanzas, refuse what is asked of it. The room's half (joining one room, what it
// says) is xmpp-room.js. The browser talks to the XMPP server itself: the archive server never sees the
// password or holds a session. Exposes window.ChatArchiveXmpp.connect(url, jid, password) ->
// Promise<Connection>, and to xmpp-room.js the connection and the XML helpers.
(function () {
  "use strict";

  var NS = {
    framing: "urn:ietf:params:xml:ns:xmpp-framing",
    sasl: "urn:ietf:params:xml:ns:xmpp-sasl",
    bind: "urn:ietf:params:xml:ns:xmpp-bind",
    session: "urn:ietf:params:xml:ns:xmpp-session",
    client: "jabber:client",
    muc: "http://jabber.org/protocol/muc",
    mucUser: "http://jabber.org/protocol/muc#user",
    stanzas: "urn:ietf:params:xml:ns:xmpp-stanzas",
    delay: "urn:xmpp:delay",
    disco: "http://jabber.org/protocol/disco#info",
    sid: "urn:xmpp:sid:0",
    mam: "urn:xmpp:mam:2",
    rsm: "http://jabber.org/protocol/rsm",
    forward: "urn:xmpp:forward:0",
    occupantId: "urn:xmpp:occupant-id:0",
    correct: "urn:xmpp:message-correct:0",
    retract: "urn:xmpp:message-retract:1",
    moderate: "urn:xmpp:message-moderate:1",
    fasten: "urn:xmpp:fasten:0",
    retract0: "urn:xmpp:message-retract:0",
    moderate0: "urn:xmpp:message-moderate:0"
  };
  var STEP_MS = 15000;
  var MIN_ITERATIONS = 4096, MAX_ITERATIONS = 1000000;  // a hostile server must not make the page spin

  function failure(message, condition) {
    var error = new Error(message);
    error.condition = condition || "";
    return error;
  }

  // -- XML: built through the DOM (so text is always escaped), parsed one frame at a time ----------

  var builder = document.implementation.createDocument(null, null, null);
  // What XML 1.0 may not carry (control characters, lone surrogates, U+FFFE/F): serialized as is, the
  // server would close the stream as not well-formed and lose everything sent after. Dropped.
  var NOT_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

  function xmlText(text) {
    return String(text).replace(NOT_XML, function (match, before) { return before || ""; });
  }

  function el(ns, name, attrs, children) {
    var node = builder.createElementNS(ns, name);
    Object.keys(attrs || {}).forEach(function (key) {
      if (attrs[key] !== undefined && attrs[key] !== null) { node.setAttribute(key, xmlText(attrs[key])); }
    });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? builder.createTextNode(xmlText(child)) : child);
    });
    return node;
  }

  function parse(text) {
    var root = new DOMParser().parseFromString(text, "text/xml").documentElement;
    if (!root || root.getElementsByTagName("parsererror").length) { throw failure("the XMPP server sent bad XML"); }
    return root;
  }

  function child(node, ns, name) {
    for (var c = node.firstElementChild; c; c = c.nextElementSibling) {
      if (c.namespaceURI === ns && c.localName === name) { return c; }
    }
    return null;
  }

  function children(node, ns, name) {
    var found = [];
    for (var c = node.firstElementChild; c; c = c.nextElementSibling) {
      if (c.namespaceURI === ns && c.localName === name) { found.push(c); }
    }
    return found;
  }

  function errorCondition(stanza) {
    var error = child(stanza, NS.client, "error");
    var condition = error && error.firstElementChild;
    return condition ? condition.localName : "undefined-condition";
  }

  function bare(jid) { return (jid || "").split("/")[0]; }
  function resource(jid) { var i = (jid || "").indexOf("/"); return i < 0 ? "" : jid.substring(i + 1); }

  // -- bytes and SASL ------------------------------------------------------------------------------

  var utf8 = new TextEncoder();

  function toBase64(bytes) {
    var text = "";
    bytes.forEach(function (b) { text += String.fromCharCode(b); });
    return btoa(text);
  }

  function fromBase64(text) {
    var raw = atob(text), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes;
  }

  function text64(text) { return toBase64(utf8.encode(text)); }
  function untext64(text) { return new TextDecoder().decode(fromBase64(text || "")); }

  async function hmac(hash, key, data) {
    var k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: hash }, false, ["sign"]);
    return new Uint8Array(await crypto.subtle.sign("HMAC", k, typeof data === "string" ? utf8.encode(data) : data));
  }

  function xor(a, b) { return a.map(function (x, i) { return x ^ b[i]; }); }

  // RFC 5802, with channel binding off ("n,,"): the proof shows the password without sending it,
  // and the server's signature shows the server knew it too.
  function scram(hash, bits) {
    return function (user, password) {
      var nonce = toBase64(crypto.getRandomValues(new Uint8Array(18)));
      var firstBare = "n=" + user.replace(/=/g, "=3D").replace(/,/g, "=2C") + ",r=" + nonce;
      var expected = null;
      return {
        initial: "n,," + firstBare,
        respond: async function (challenge) {
          var fields = {};
          challenge.split(",").forEach(function (part) { fields[part[0]] = part.substring(2); });
          var iterations = parseInt(fields.i, 10);
          if (!fields.r || fields.r.indexOf(nonce) !== 0 || !fields.s) { throw failure("the XMPP server's SCRAM answer is invalid"); }
          if (!(iterations >= MIN_ITERATIONS && iterations <= MAX_ITERATIONS)) { throw failure("the XMPP server asked for an unsafe SCRAM iteration count"); }
          var base = await crypto.subtle.importKey("raw", utf8.encode(password), "PBKDF2", false, ["deriveBits"]);
          var salted = new Uint8Array(await crypto.subtle.deriveBits(
            { name: "PBKDF2", salt: fromBase64(fields.s), iterations: iterations, hash: hash }, base, bits));
          var clientKey = await hmac(hash, salted, "Client Key");
          var storedKey = new Uint8Array(await crypto.subtle.digest(hash, clientKey));
          var withoutProof = "c=biws,r=" + fields.r;
          var message = firstBare + "," + challenge + "," + withoutProof;
          var signature = await hmac(hash, storedKey, message);
          expected = toBase64(await hmac(hash, await hmac(hash, salted, "Server Key"), message));
          return withoutProof + ",p=" + toBase64(xor(clientKey, signature));
        },
        verify: function (success) {
          if (success !== "v=" + expected) { throw failure("the XMPP server could not prove it knows this account"); }
        }
      };
    };
  }

  function plain(user, password) {
    return { initial: "\u0000" + user + "\u0000" + password, respond: null, verify: function () {} };
  }

  var MECHANISMS = [
    { name: "SCRAM-SHA-256", start: scram("SHA-256", 256), needsCrypto: true },
    { name: "SCRAM-SHA-1", start: scram("SHA-1", 160), needsCrypto: true },
    { name: "PLAIN", start: plain, needsCrypto: false }
  ];

  function chooseMechanism(features) {
    var mechanisms = child(features, NS.sasl, "mechanisms");
    var offered = mechanisms ? children(mechanisms, NS.sasl, "mechanism").map(function (m) { return m.textContent; }) : [];
    var usable = MECHANISMS.filter(function (m) {
      return offered.indexOf(m.name) >= 0 && (!m.needsCrypto || (window.crypto && window.crypto.subtle));
    });
    if (!usable.length) { throw failure("the XMPP server offers no sign-in method this page can use (" + offered.join(", ") + ")"); }
    return usable[0];
  }

  // -- the stream ----------------------------------------------------------------------------------

  function Connection(socket, domain) {
    this.socket = socket;
    this.domain = domain;
    this.jid = "";
    this.inbox = [];
    this.readers = [];
    this.handler = null;  // after sign-in, every stanza goes here
    this.onclose = null;
    this.ended = false;
    var self = this;
    socket.onmessage = function (event) { self.receive(event.data); };
    socket.onclose = function () { self.end(failure("the connection to the XMPP server ended")); };
  }

  Connection.prototype.receive = function (text) {
    var node;
    try { node = parse(text); } catch (error) { this.close(); return; }
    if (node.namespaceURI === NS.framing && node.localName === "close") { this.close(); return; }
    if (this.handler) { this.handler(node); }
    else if (this.readers.length) { this.readers.shift().resolve(node); }
    else { this.inbox.push(node); }
  };

  Connection.prototype.end = function (error) {
    if (this.ended) { return; }
    this.ended = true;
    this.readers.splice(0).forEach(function (reader) { reader.reject(error); });
    if (this.onclose) { this.onclose(error); }
  };

  // The next element of the stream (during sign-in, when the order of elements is the protocol).
  Connection.prototype.read = function () {
    var self = this;
    if (this.inbox.length) { return Promise.resolve(this.inbox.shift()); }
    if (this.ended) { return Promise.reject(failure("the connection to the XMPP server ended")); }
    return new Promise(function (resolve, reject) {
      var reader = { resolve: resolve, reject: reject };
      self.readers.push(reader);
      setTimeout(function () {
        var i = self.readers.indexOf(reader);
        if (i >= 0) { self.readers.splice(i, 1); reject(failure("the XMPP server did not answer in time")); }
      }, STEP_MS);
    });
  };

  Connection.prototype.send = function (node) {
    if (!this.ended) { this.socket.send(new XMLSerializer().serializeToString(node)); }
  };

  Connection.prototype.openStream = async function () {
    this.send(el(NS.framing, "open", { to: this.domain, version: "1.0" }));
    var opened = await this.read();
    if (opened.localName !== "open") { throw failure("the XMPP server did not open a stream"); }
    var features = await this.read();
    if (features.localName !== "features") { throw failure("the XMPP server sent no stream features"); }
    return features;
  };

  Connection.prototype.signIn = async function (user, password) {
    var mechanism = chooseMechanism(await this.openStream());
    var exchange = mechanism.start(user, password);
    this.send(el(NS.sasl, "auth", { mechanism: mechanism.name }, [text64(exchange.initial)]));
    for (;;) {
      var answer = await this.read();
      if (answer.localName === "challenge" && exchange.respond) {
        this.send(el(NS.sasl, "response", {}, [text64(await exchange.respond(untext64(answer.textContent)))]));
      } else if (answer.localName === "success") {
        exchange.verify(untext64(answer.textContent));
        return;
      } else if (answer.localName === "failure") {
        throw failure("the XMPP server refused this JID and password", "not-authorized");
      } else {
        throw failure("the XMPP server broke off the sign-in");
      }
    }
  };

  Connection.prototype.request = async function (payload) {
    var id = "w" + Math.random().toString(36).substring(2);
    this.send(el(NS.client, "iq", { type: "set", id: id }, [payload]));
    var reply = await this.read();
    if (reply.localName !== "iq" || reply.getAttribute("id") !== id || reply.getAttribute("type") !== "result") {
      throw failure("the XMPP server refused the session (" + errorCondition(reply) + ")");
    }
    return reply;
  };

  Connection.prototype.bind = async function () {
    var features = await this.openStream();  // the stream restarts after SASL
    var resourceName = "widget-" + Math.random().toString(36).substring(2, 10);
    var reply = await this.request(el(NS.bind, "bind", {}, [el(NS.bind, "resource", {}, [resourceName])]));
    var bound = child(reply, NS.bind, "bind");
    this.jid = bound && child(bound, NS.bind, "jid") ? child(bound, NS.bind, "jid").textContent : "";
    var session = child(features, NS.session, "session");
    if (session && !child(session, NS.session, "optional")) { await this.request(el(NS.session, "session")); }
  };

  Connection.prototype.close = function () {
    if (this.socket.readyState === WebSocket.OPEN) {
      try { this.send(el(NS.framing, "close")); } catch (ignored) { /* closing anyway */ }
      this.socket.close();
    }
    this.end(failure("the connection to the XMPP server ended"));
  };

  // Requests to this client (disco, version, ping...) get the answer RFC 6120 asks of a client that
  // offers nothing: service-unavailable.
  Connection.prototype.refuse = function (iq) {
    var type = iq.getAttribute("type");
    if (type !== "get" && type !== "set") { return; }
    this.send(el(NS.client, "iq", { type: "error", id: iq.getAttribute("id"), to: iq.getAttribute("from") }, [
      el(NS.client, "error", { type: "cancel" }, [el(NS.stanzas, "service-unavailable")])
    ]));
  };

  function openSocket(url) {
    return new Promise(function (resolve, reject) {
      var socket;
      try { socket = new WebSocket(url, "xmpp"); } catch (error) { reject(failure("the XMPP server's WebSocket address is invalid")); return; }
      var timer = setTimeout(function () { socket.close(); reject(failure("could not connect to the XMPP server")); }, STEP_MS);
      socket.onopen = function () { clearTimeout(timer); resolve(socket); };
      socket.onerror = function () { clearTimeout(timer); reject(failure("could not connect to the XMPP server")); };
    });
  }

  async function connect(url, jid, password) {
    var at = jid.indexOf("@");
    if (at < 1 || at === jid.length - 1 || jid.indexOf("/") >= 0) { throw failure(jid + " is not an XMPP address (user@example.org)"); }
    var connection = new Connection(await openSocket(url), jid.substring(at + 1));
    try {
      await connection.signIn(jid.substring(0, at), password);
      await connection.bind();
    } catch (error) {
      connection.close();
      throw error;
    }
    return connection;
  }

  window.ChatArchiveXmpp = {
    connect: connect, Connection: Connection, NS: NS, STEP_MS: STEP_MS, failure: failure, el: el, child: child,
    children: children, errorCondition: errorCondition, bare: bare, resource: resource
  };
})();
