#!/bin/sh
echo "${GREETING:-hi} from demo-app"
cat /app/built.txt
