// The widget's XMPP client, the room's half (the connection's is xmpp.js): join one room (XEP-0045), send
// groupchat messages and report what the room sends, read as the archive's listener reads it
// (ingest/translate_message.py): posts, XEP-0308 corrections, XEP-0424 retractions and XEP-0425 moderation,
// with the ids and occupant-ids that name messages and their authors. Adds joinRoom, say and leave to
// xmpp.js's Connection.
(function () {
  "use strict";

  var X = window.ChatArchiveXmpp;
  var NS = X.NS, STEP_MS = X.STEP_MS, failure = X.failure, el = X.el, child = X.child, children = X.children;
  var errorCondition = X.errorCondition, bare = X.bare, resource = X.resource, Connection = X.Connection;
  var PAGE = 50;  // messages a page of the room's archive, after Join
  // The newest line's time is the archive's (when its listener heard it), the history's the room's: a message
  // the room stamped just before that time came after the line. A margin takes it in; the page drops the
  // replayed lines it shows already.
  var SINCE_MARGIN_MS = 5000;

  function sinceMoment(at) {
    var moment = Date.parse(at);
    return isNaN(moment) ? at : new Date(moment - SINCE_MARGIN_MS).toISOString();
  }
  var REFUSALS = {
    "conflict": "that nickname is in use in this room: choose another",
    "not-authorized": "the room needs a password",
    "registration-required": "the room is members-only and this account is not a member",
    "forbidden": "this account is banned from the room",
    "item-not-found": "the room does not exist or is locked",
    "service-unavailable": "the room is full"
  };

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
    // The sender's real JID where the room shows it, for a self-retraction as for a message or correction (the
    // archive's listener names it in both: ingest/translate_message.py), so that both are judged by it.
    var sender = { nick: who, occupant_id: occupantIdOf(stanza, trust), stanza_id: roomStanzaId(stanza, room, trust),
                   jid: (who && (realJid(child(stanza, NS.mucUser, "x")) || (present[who] && present[who].jid))) || null };
    var retraction = retractionOf(stanza, who);
    if (retraction === "malformed") { return null; }
    if (retraction) { return Object.assign(retraction, sender); }
    var body = child(stanza, NS.client, "body");
    if (!body || !who) { return null; }
    var delay = child(stanza, NS.delay, "delay");
    var item = Object.assign(sender, {
      kind: "message",
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
    var catchUp = null;  // while the room's archive is read: {queryId, iqId, timer, items, live}
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
        if (fromArchive()) { history = { maxstanzas: "0" }; } else if (since && since.at) { history.since = sinceMoment(since.at); }
        self.send(el(NS.client, "presence", { to: room + "/" + nick }, [
          el(NS.muc, "x", {}, [el(NS.muc, "history", history)])
        ]));
      }
      function askArchive(after) {
        catchUp.iqId = "w" + Math.random().toString(36).substring(2);
        // A room that never answers must not hold what is said live: after a while it shows without.
        clearTimeout(catchUp.timer);
        catchUp.timer = setTimeout(function () { caughtUp("no answer"); }, STEP_MS);
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
        clearTimeout(got.timer);
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
          var renamed = x && children(x, NS.mucUser, "status").some(function (s) { return s.getAttribute("code") === "303"; })
            && child(x, NS.mucUser, "item") && child(x, NS.mucUser, "item").getAttribute("nick");
          if (type === "unavailable" && renamed && present[who]) {
            // A nick change (XEP-0045 7.6): the same occupant under another nick (the archive's nick_changed).
            present[renamed] = present[who];
            delete present[who];
            onItem({ kind: "nick_changed", old_nick: who, nick: renamed, at: new Date().toISOString() });
          } else if (type === "unavailable") {
            if (present[who]) { delete present[who]; onItem({ kind: "left", nick: who, at: new Date().toISOString() }); }
          } else {
            // Before this account is in (``settled``): the room's list of who is in, not somebody joining.
            if (!present[who]) { onItem({ kind: "joined", nick: who, at: new Date().toISOString(), roster: !settled }); }
            present[who] = { jid: realJid(x) };
          }
          if (self110 && type !== "unavailable" && !settled) {
            // In: from here on the room sends everything live; what came before is the archive's to tell.
            if (fromArchive()) {
              catchUp = { queryId: "w" + Math.random().toString(36).substring(2), iqId: null, timer: null, items: [], live: [] };
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

  Connection.prototype.say = function (room, body) {
    var id = "m" + Math.random().toString(36).substring(2);
    this.send(el(NS.client, "message", { to: room, type: "groupchat", id: id }, [el(NS.client, "body", {}, [body])]));
  };

  Connection.prototype.leave = function (room, nick) {
    this.send(el(NS.client, "presence", { to: room + "/" + nick, type: "unavailable" }));
    this.close();
  };
})();
