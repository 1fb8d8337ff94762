-- Transaction IDs are scoped to the request path, as the spec identifies a
-- retransmission by device, transaction ID and path: a client reusing an ID
-- in another room (or for another event type, redacted event or to-device
-- type) makes a new request, which an ID scoped to the device alone silently
-- dropped. `scope` is the path without its version prefix and transaction ID,
-- each parameter with '%' and '/' percent-escaped (events/model.py, txn_scope):
-- `send/!room:hs/m.room.message`, `redact/!room:hs/$event`,
-- `sendToDevice/m.room_key`.
--
-- Both tables stay outside the log, as before: de-duplication indexes written
-- in the same transaction as what they guard.

-- Event transaction IDs: the scope of each stored row follows from its event.
-- A redaction's ID was stored as "redact:" + the client's ID; it is stored as
-- the client gave it now, the scope telling the endpoints apart (so the old
-- key goes first: "redact:T" becomes "T" beside a send's "T"). A redaction
-- sent through /send with an ID starting "redact:" cannot be told apart from
-- one sent through /redact; it is taken for the latter.
ALTER TABLE event_txn_ids DROP CONSTRAINT event_txn_ids_pkey;
ALTER TABLE event_txn_ids ADD COLUMN scope TEXT;

UPDATE event_txn_ids t
SET scope = CASE
        WHEN e.type = 'm.room.redaction' AND t.txn_id LIKE 'redact:%' THEN
            'redact/'
            || replace(replace(e.room_id, '%', '%25'), '/', '%2F') || '/'
            || replace(replace(coalesce(e.json::jsonb -> 'content' ->> 'redacts', ''),
                               '%', '%25'), '/', '%2F')
        ELSE
            'send/'
            || replace(replace(e.room_id, '%', '%25'), '/', '%2F') || '/'
            || replace(replace(e.type, '%', '%25'), '/', '%2F')
    END,
    txn_id = CASE
        WHEN e.type = 'm.room.redaction' AND t.txn_id LIKE 'redact:%'
            THEN substr(t.txn_id, length('redact:') + 1)
        ELSE t.txn_id
    END
FROM events e
WHERE e.event_id = t.event_id;

-- Written with their event in one transaction, every row has one; a row that
-- had none could answer no retry.
DELETE FROM event_txn_ids WHERE scope IS NULL;

ALTER TABLE event_txn_ids ALTER COLUMN scope SET NOT NULL;
ALTER TABLE event_txn_ids ADD PRIMARY KEY (user_id, device_id, txn_id, scope);

-- To-device transaction IDs: the event type of a stored row is not known (the
-- messages are deleted once delivered), so stored rows get the empty scope,
-- which store/to_device.py treats as "any path": a retry spanning the upgrade
-- is still de-duplicated.
ALTER TABLE device_inbox_txns ADD COLUMN scope TEXT NOT NULL DEFAULT '';
ALTER TABLE device_inbox_txns ALTER COLUMN scope DROP DEFAULT;
ALTER TABLE device_inbox_txns DROP CONSTRAINT device_inbox_txns_pkey;
ALTER TABLE device_inbox_txns ADD PRIMARY KEY (user_id, device_id, txn_id, scope);
