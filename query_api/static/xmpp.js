// A small XMPP client over WebSocket (RFC 7395) for the room widget: sign in (SASL SCRAM-SHA-256 or
// SCRAM-SHA-1 through WebCrypto, PLAIN only where the server offers nothing better), bind a resource,
// join one room (XEP-0045), send groupchat messages and report what the room sends, read as the archive's
// listener reads it (ingest/translate_message.py): posts, XEP-0308 corrections, XEP-0424 retractions and
// XEP-0425 moderation, with the ids and occupant-ids that name messages and their authors.
// The browser talks to the XMPP server itself: the archive server never sees the password or holds a
// session. Exposes window.ChatArchiveXmpp.connect(url, jid, password) -> Promise<Connection>.
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
  var PAGE = 50;  // messages a page of the room's archive, after Join
  var MIN_ITERATIONS = 4096, MAX_ITERATIONS = 1000000;  // a hostile server must not make the page spin
  var REFUSALS = {
    "conflict": "that nickname is in use in this room: choose another",
    "not-authorized": "the room needs a password",
    "registration-required": "the room is members-only and this account is not a member",
    "forbidden": "this account is banned from the room",
    "item-not-found": "the room does not exist or is locked",
    "service-unavailable": "the room is full"
  };

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

  // -- the room ------------------------------------------------------------------------------------

  // -- what the room says (as ingest/translate_message.py reads it) ------------------------------

  // The ids a message is known by (messages.ids): the room's stanza-id, the origin-id and the id attribute.
  // A stanza-id or occupant-id counts only where the room says it sets them (its disco#info): elsewhere the
  // sender may have forged them (XEP-0359 section 4, XEP-0421 section 4).
  function roomStanzaId(stanza, room, trust) {
    var roomSids = trust.stanzaId ? children(stanza, NS.sid, "stanza-id").filter(function (sid) {
      return (sid.getAttribute("by") || "").toLowerCase() === room && sid.getAttribute("id");
    }) : [];
    return roomSids.length ? roomSids[0].getAttribute("id") : null;
  }

  function refsOf(stanza, room, trust) {
    var origin = child(stanza, NS.sid, "origin-id");
    var refs = [];
    [roomStanzaId(stanza, room, trust), origin && origin.getAttribute("id"), stanza.getAttribute("id")].forEach(function (ref) {
      if (ref && refs.indexOf(ref) < 0) { refs.push(ref); }
    });
    return refs;
  }

  function occupantIdOf(stanza, trust) {
    var found = trust.occupantId ? child(stanza, NS.occupantId, "occupant-id") : null;
    return found ? found.getAttribute("id") : null;
  }

  function realJid(x) {
    var item = x && child(x, NS.mucUser, "item");
    return item && item.getAttribute("jid") ? bare(item.getAttribute("jid")) : null;
  }

  // A retraction (XEP-0424 by its author, XEP-0425 by the room for a moderator; the current and the older
  // fastening forms): {kind: "retraction", target, moderated}, "malformed" for one the listener would skip,
  // or null for no retraction. Whatever body it carries is only a fallback for clients that know none.
  function retractionOf(stanza, who) {
    var retract = child(stanza, NS.retract, "retract"), moderated;
    if (retract) {
      moderated = child(retract, NS.moderate, "moderated");
    } else {
      retract = child(stanza, NS.fasten, "apply-to");
      if (!retract) { return null; }
      moderated = child(retract, NS.moderate0, "moderated");
      if (!moderated && !child(retract, NS.retract0, "retract")) { return null; }  // some other fastening
    }
    // A self-retraction comes from an occupant, a moderation from the room itself.
    if (!retract.getAttribute("id") || (moderated ? who : !who)) { return "malformed"; }
    return { kind: "retraction", target: retract.getAttribute("id"), moderated: !!moderated };
  }

  // A groupchat message as an item: {kind: message|correction|retraction, nick, occupant_id, jid, ...}, or
  // null for what shows nothing (a subject, the room's own notices, what the listener would skip as malformed).
  // ``present``: the occupants by nick, with their real JIDs where the room shows them.
  function messageItem(stanza, room, who, trust, present) {
    var sender = { nick: who, occupant_id: occupantIdOf(stanza, trust), stanza_id: roomStanzaId(stanza, room, trust) };
    var retraction = retractionOf(stanza, who);
    if (retraction === "malformed") { return null; }
    // The archive names no real JID for a self-retraction: its author is told by occupant-id, else nick.
    if (retraction) { return Object.assign(retraction, sender); }
    var body = child(stanza, NS.client, "body");
    if (!body || !who) { return null; }
    var delay = child(stanza, NS.delay, "delay");
    var item = Object.assign(sender, {
      kind: "message",
      jid: realJid(child(stanza, NS.mucUser, "x")) || (present[who] && present[who].jid) || null,
      body: body.textContent,
      at: delay ? delay.getAttribute("stamp") : new Date().toISOString(),
      refs: refsOf(stanza, room, trust)
    });
    var replace = child(stanza, NS.correct, "replace");
    if (replace) {
      if (!replace.getAttribute("id")) { return null; }
      item.kind = "correction";
      item.replaces = replace.getAttribute("id");
    }
    return item;
  }

  // Enter ``room`` as ``nick``; ``onItem`` then receives {kind: joined|left, nick, at} for presences and
  // ``messageItem``'s items for what is said. Resolves with the nick the room gave, rejects with the room's
  // refusal. ``since`` is what the page already shows, so that nothing said before Join is lost or repeated:
  // - {after: the stanza-id of the newest message shown}: when the room keeps an archive (XEP-0313), its
  //   messages after that one, asked for once in the room, then what was heard live meanwhile, less what
  //   the archive gave (by stanza-id): exact, whatever the clocks or the room's history length;
  // - {at: the time of the newest line shown} (a room without archive, or no message shown): the room's
  //   history since then (XEP-0045 7.2.15);
  // - null: the room's last 20 messages.
  // Replayed items carry ``replayed: true``: the page drops those it already shows.
  Connection.prototype.joinRoom = function (room, nick, onItem, since) {
    var self = this;
    var present = {};
    var trust = { stanzaId: false, occupantId: false, archive: false };  // until the room's disco#info tells
    var discoId = "w" + Math.random().toString(36).substring(2);
    var catchUp = null;  // while the room's archive is read: {queryId, iqId, items, live}
    return new Promise(function (resolve, reject) {
      var settled = false;
      var timer = setTimeout(function () { settle(failure("the room did not let this account in")); }, STEP_MS);
      function settle(error, value) {
        if (settled) { return; }
        settled = true;
        clearTimeout(timer);
        if (error) { reject(error); } else { resolve(value); }
      }
      function fromArchive() { return since && since.after && trust.archive; }
      function enter() {
        var history = { maxstanzas: "20" };
        if (fromArchive()) { history = { maxstanzas: "0" }; } else if (since && since.at) { history.since = since.at; }
        self.send(el(NS.client, "presence", { to: room + "/" + nick }, [
          el(NS.muc, "x", {}, [el(NS.muc, "history", history)])
        ]));
      }
      function askArchive(after) {
        catchUp.iqId = "w" + Math.random().toString(36).substring(2);
        self.send(el(NS.client, "iq", { type: "set", to: room, id: catchUp.iqId }, [
          el(NS.mam, "query", { queryid: catchUp.queryId }, [
            el(NS.rsm, "set", {}, [el(NS.rsm, "max", {}, [String(PAGE)]), el(NS.rsm, "after", {}, [after])])
          ])
        ]));
      }
      // The archive's answer is complete (or refused): its messages, then those heard live meanwhile.
      function caughtUp(error) {
        var got = catchUp;
        catchUp = null;
        var seen = {};
        got.items.forEach(function (item) { seen[item.stanza_id] = true; onItem(item); });
        got.live.forEach(function (item) { if (!(item.stanza_id && seen[item.stanza_id])) { onItem(item); } });
        if (error) { onItem({ kind: "error", body: "what was said just before you joined could not be read (" + error + "): Leave shows it" }); }
      }
      function archived(stanza) {
        var result = child(stanza, NS.mam, "result");
        var forwarded = result && child(result, NS.forward, "forwarded");
        var inner = forwarded && child(forwarded, NS.client, "message");
        if (!inner || result.getAttribute("queryid") !== catchUp.queryId || bare(inner.getAttribute("from")) !== room) { return; }
        var item = messageItem(inner, room, resource(inner.getAttribute("from")), trust, present);
        if (!item) { return; }
        var delay = child(forwarded, NS.delay, "delay");
        item.at = delay ? delay.getAttribute("stamp") : item.at;
        // The archive's id is the message's stanza-id (the stored message does not carry it).
        item.stanza_id = result.getAttribute("id");
        item.refs = [item.stanza_id].concat((item.refs || []).filter(function (ref) { return ref !== item.stanza_id; }));
        item.replayed = true;
        catchUp.items.push(item);
      }
      function archiveAnswer(stanza) {
        if (stanza.getAttribute("type") !== "result") { caughtUp(errorCondition(stanza)); return; }
        var fin = child(stanza, NS.mam, "fin");
        var set = fin && child(fin, NS.rsm, "set");
        var last = set && child(set, NS.rsm, "last");
        if (fin && fin.getAttribute("complete") !== "true" && last && last.textContent) { askArchive(last.textContent); } else { caughtUp(null); }
      }
      self.handler = function (stanza) {
        var from = stanza.getAttribute("from") || "";
        var answer = stanza.getAttribute("type") === "result" || stanza.getAttribute("type") === "error";
        if (stanza.localName === "iq" && answer && stanza.getAttribute("id") === discoId) {
          // The room's features, or none (an error: a room this join creates), then the join itself.
          var query = stanza.getAttribute("type") === "result" ? child(stanza, NS.disco, "query") : null;
          var features = query ? children(query, NS.disco, "feature").map(function (f) { return f.getAttribute("var"); }) : [];
          trust.archive = features.indexOf(NS.mam) >= 0;
          trust.stanzaId = features.indexOf(NS.sid) >= 0 || trust.archive;
          trust.occupantId = features.indexOf(NS.occupantId) >= 0;
          enter();
          return;
        }
        if (stanza.localName === "iq" && answer && catchUp && stanza.getAttribute("id") === catchUp.iqId) { archiveAnswer(stanza); return; }
        if (stanza.localName === "iq") { self.refuse(stanza); return; }
        if (bare(from) !== room) { return; }
        var who = resource(from);
        if (stanza.localName === "presence") {
          var type = stanza.getAttribute("type");
          if (type === "error") { settle(failure(REFUSALS[errorCondition(stanza)] || "the room refused to let this account in", errorCondition(stanza))); return; }
          var x = child(stanza, NS.mucUser, "x");
          var self110 = x && children(x, NS.mucUser, "status").some(function (s) { return s.getAttribute("code") === "110"; });
          if (type === "unavailable") {
            if (present[who]) { delete present[who]; onItem({ kind: "left", nick: who, at: new Date().toISOString() }); }
          } else {
            if (!present[who]) { onItem({ kind: "joined", nick: who, at: new Date().toISOString() }); }
            present[who] = { jid: realJid(x) };
          }
          if (self110 && type !== "unavailable" && !settled) {
            // In: from here on the room sends everything live; what came before is the archive's to tell.
            if (fromArchive()) {
              catchUp = { queryId: "w" + Math.random().toString(36).substring(2), iqId: null, items: [], live: [] };
              askArchive(since.after);
            }
            settle(null, who);
          }
        } else if (stanza.localName === "message" && catchUp && !who && child(stanza, NS.mam, "result")) {
          archived(stanza);
        } else if (stanza.localName === "message" && stanza.getAttribute("type") === "groupchat") {
          var item = messageItem(stanza, room, who, trust, present);
          if (item && child(stanza, NS.delay, "delay")) { item.replayed = true; }  // the room's history
          if (item && catchUp) { catchUp.live.push(item); } else if (item) { onItem(item); }
        } else if (stanza.localName === "message" && stanza.getAttribute("type") === "error") {
          onItem({ kind: "error", body: "the room did not take that message (" + errorCondition(stanza) + ")" });
        }
      };
      self.send(el(NS.client, "iq", { type: "get", to: room, id: discoId }, [el(NS.disco, "query")]));
    });
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

  Connection.prototype.say = function (room, body) {
    var id = "m" + Math.random().toString(36).substring(2);
    this.send(el(NS.client, "message", { to: room, type: "groupchat", id: id }, [el(NS.client, "body", {}, [body])]));
  };

  Connection.prototype.leave = function (room, nick) {
    this.send(el(NS.client, "presence", { to: room + "/" + nick, type: "unavailable" }));
    this.close();
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

  window.ChatArchiveXmpp = { connect: connect };
})();
