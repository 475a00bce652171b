# -*- coding: utf-8 -*-
name = "ÿþ"
