"""The built-in Push Gateway: POST /_matrix/push/v1/notify, relayed to FCM and APNs."""
