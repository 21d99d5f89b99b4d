import D3DKMT
