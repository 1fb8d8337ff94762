-- Reserved for work in progress; filled in or removed before it lands.
SELECT 1;
