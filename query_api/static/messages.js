// The message model's rule (projections/messages.py) for what the widget hears live after Join, so that a
// correction or retraction arriving over XMPP changes the shown line exactly as the archive's feed would:
// - a line is known by every id it came with (the feed's ``refs``: stanza-id, origin-id, id attribute, and
//   those of the corrections applied to it); a correction or retraction names one, and where several lines
//   carry it the newest is meant (``Book.find``);
// - a correction applies only when it comes from the line's author (``same_author``): the text is replaced,
//   the line marked edited and known by the correction's ids too; anybody else's correction is a line of its
//   own, marked edited (``correction_line``);
// - a retraction removes the line when its author sent it or the room moderated it (``may_remove``); the
//   first removal is kept; any other retraction, or one naming no shown line, changes nothing.
// Lines are plain objects as the widget's feed sends them ({kind, nick, body, refs, occupant_id, removed,
// edited, ...}); a line heard live may also carry the sender's real JID, when the room shows it.
(function () {
  "use strict";

  function bare(jid) { return (jid || "").split("/")[0]; }

  // XEP-0308 section 3 / XEP-0421: the same occupant-id when both carry one, else the same bare real JID
  // when both carry one, else the same nick.
  function sameAuthor(line, who) {
    if (line.occupant_id && who.occupant_id) { return line.occupant_id === who.occupant_id; }
    if (line.jid && who.jid) { return bare(line.jid) === bare(who.jid); }
    if (line.nick && who.nick) { return line.nick === who.nick; }
    return true;
  }

  // Moderators may remove any message (XEP-0425); authors only their own (XEP-0424).
  function mayRemove(line, retraction) {
    return retraction.moderated || sameAuthor(line, retraction);
  }

  function union(refs, more) {
    return refs.concat(more.filter(function (ref) { return refs.indexOf(ref) < 0; }));
  }

  // What ``heard`` (a {kind: message|correction|retraction|...} item from xmpp.js) does to the lines:
  // {line, replaces} to show, where ``replaces`` is the shown line it takes the place of (or null for a new
  // line), or null when nothing changes. ``find(ref)`` is the newest shown message line known by ``ref``: a
  // correction naming a message older than the shown lines is a line of its own here, as one naming no message is.
  function step(heard, find) {
    if (heard.kind === "correction") {
      var corrected = find(heard.replaces);
      if (corrected && sameAuthor(corrected, heard)) {
        var line = Object.assign({}, corrected, { body: heard.body, edited: true, refs: union(corrected.refs || [], heard.refs) });
        return { line: line, replaces: corrected };
      }
      // One naming no shown message awaits it, and is known by the id it names too (lines.ids).
      var refs = corrected ? heard.refs : union(heard.refs, [heard.replaces]);
      return { line: Object.assign({}, heard, { kind: "message", edited: true, refs: refs }), replaces: null };
    }
    if (heard.kind === "retraction") {
      var retracted = find(heard.target);
      if (retracted && !retracted.removed && mayRemove(retracted, heard)) {
        return { line: Object.assign({}, retracted, { removed: true }), replaces: retracted };
      }
      return null;
    }
    return { line: heard, replaces: null };
  }

  window.ChatArchiveMessages = { step: step };
})();
